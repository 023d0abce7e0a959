//! Cosign public keys: the PEM files `cosign generate-key-pair` and `cosign public-key` write
//! (`PUBLIC KEY`, an X.509 SubjectPublicKeyInfo), and `RSA PUBLIC KEY` (PKCS#1), which sigstore's
//! `UnmarshalPEMToPublicKey` also reads.
//!
//! The key types are the ones containers/image (skopeo, podman) verify with its hard-coded
//! SHA-256 (`signature/internal/sigstore_payload.go`): ECDSA P-256 and P-384 with ASN.1 (DER)
//! signatures over SHA-256, RSA PKCS#1 v1.5 with SHA-256, and Ed25519. The SPKI is taken apart by
//! the `spki` crate and every signature is checked by `ring`: nothing here computes anything
//! cryptographic itself.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use spki::der::asn1::ObjectIdentifier;
use spki::SubjectPublicKeyInfoRef;

use super::Error;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// What kind of key it is, for messages and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::EcdsaP384 => "ECDSA P-384",
            KeyKind::Rsa => "RSA",
            KeyKind::Ed25519 => "Ed25519",
        })
    }
}

/// A public key that verifies cosign signatures.
#[derive(Clone)]
pub struct PublicKey {
    kind: KeyKind,
    /// What ring takes: the SPKI's subjectPublicKey bits (an uncompressed EC point, a PKCS#1
    /// RSAPublicKey, or the 32 bytes of an Ed25519 key).
    bytes: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kind)
    }
}

impl PublicKey {
    /// Reads the first PEM block of `text`; `what` names the source in errors ("key file x.pub").
    pub fn from_pem(text: &[u8], what: &str) -> Result<PublicKey, Error> {
        let bad = |reason: String| Error::Key {
            what: what.to_string(),
            reason,
        };
        let block = pem::parse(text).map_err(|e| {
            bad(format!(
                "not a PEM public key ({e}); give the cosign.pub that `cosign generate-key-pair` wrote"
            ))
        })?;
        match block.tag() {
            "PUBLIC KEY" => PublicKey::from_spki_der(block.contents()).map_err(bad),
            "RSA PUBLIC KEY" => Ok(PublicKey {
                kind: KeyKind::Rsa,
                bytes: block.contents().to_vec(),
            }),
            other => Err(bad(format!(
                "PEM block {:?} is not a public key (expected \"PUBLIC KEY\"); for a private key give its public half (`cosign public-key`)",
                crate::text::escape(other)
            ))),
        }
    }

    /// A DER SubjectPublicKeyInfo; the error is the reason.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, String> {
        let info = SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| format!("invalid SubjectPublicKeyInfo: {e}"))?;
        let bytes = info
            .subject_public_key
            .as_bytes()
            .ok_or("the public key bit string is not whole bytes")?
            .to_vec();
        let oid = info.algorithm.oid;
        let kind = if oid == EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| "an EC key without a named curve")?;
            if curve == P256 {
                KeyKind::EcdsaP256
            } else if curve == P384 {
                KeyKind::EcdsaP384
            } else if curve == P521 {
                return Err(
                    "ECDSA P-521 keys are not supported (use P-256, P-384, RSA or Ed25519)".into(),
                );
            } else {
                return Err(format!("EC curve {curve} is not supported"));
            }
        } else if oid == RSA {
            KeyKind::Rsa
        } else if oid == ED25519 {
            KeyKind::Ed25519
        } else {
            return Err(format!(
                "key algorithm {oid} is not supported (ECDSA P-256/P-384, RSA or Ed25519)"
            ));
        };
        let key = PublicKey { kind, bytes };
        key.check_shape()?;
        Ok(key)
    }

    /// Refuses a key ring would refuse anyway, so the error names the key file rather than
    /// every signature failing later.
    fn check_shape(&self) -> Result<(), String> {
        let ok = match self.kind {
            KeyKind::EcdsaP256 => self.bytes.len() == 65 && self.bytes[0] == 4,
            KeyKind::EcdsaP384 => self.bytes.len() == 97 && self.bytes[0] == 4,
            KeyKind::Ed25519 => self.bytes.len() == 32,
            KeyKind::Rsa => !self.bytes.is_empty(),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "malformed {} public key (EC keys must be uncompressed points)",
                self.kind
            ))
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The algorithms a signature by this key may use. containers/image verifies every key
    /// with SHA-256, P-384 included; sigstore's newer default signer hashes P-384 with SHA-384,
    /// so both digests are accepted for that curve (each is a full ECDSA verification).
    fn algorithms(&self) -> &'static [&'static dyn VerificationAlgorithm] {
        const P256: &[&dyn VerificationAlgorithm] = &[&signature::ECDSA_P256_SHA256_ASN1];
        const P384: &[&dyn VerificationAlgorithm] = &[
            &signature::ECDSA_P384_SHA256_ASN1,
            &signature::ECDSA_P384_SHA384_ASN1,
        ];
        const RSA: &[&dyn VerificationAlgorithm] = &[&signature::RSA_PKCS1_2048_8192_SHA256];
        const ED25519: &[&dyn VerificationAlgorithm] = &[&signature::ED25519];
        match self.kind {
            KeyKind::EcdsaP256 => P256,
            KeyKind::EcdsaP384 => P384,
            KeyKind::Rsa => RSA,
            KeyKind::Ed25519 => ED25519,
        }
    }

    /// Whether `sig` is this key's signature over exactly `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        self.algorithms().iter().any(|alg| {
            UnparsedPublicKey::new(*alg, &self.bytes)
                .verify(message, sig)
                .is_ok()
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine as _;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

    /// The fixed DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480), before the 65-byte point.
    const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
    const P384_SPKI_PREFIX: &str = "3076301006072a8648ce3d020106052b81040022036200";
    const ED25519_SPKI_PREFIX: &str = "302a300506032b6570032100";

    pub(crate) fn pem_of(tag: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(tag, der.to_vec()))
    }

    /// Signs a message with a test key.
    pub(crate) type Sign = Box<dyn Fn(&[u8]) -> Vec<u8>>;

    /// A key pair for tests: its public key as cosign writes it, and a signing function.
    pub(crate) struct TestKey {
        pub public_pem: String,
        pub sign: Sign,
    }

    pub(crate) fn ecdsa(
        signing: &'static signature::EcdsaSigningAlgorithm,
        prefix: &str,
    ) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap();
        let mut der = hex::decode(prefix).unwrap();
        der.extend_from_slice(pair.public_key().as_ref());
        TestKey {
            public_pem: pem_of("PUBLIC KEY", &der),
            sign: Box::new(move |m| {
                pair.sign(&SystemRandom::new(), m)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }),
        }
    }

    pub(crate) fn p256() -> TestKey {
        ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, P256_SPKI_PREFIX)
    }

    fn ed25519() -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut der = hex::decode(ED25519_SPKI_PREFIX).unwrap();
        der.extend_from_slice(pair.public_key().as_ref());
        TestKey {
            public_pem: pem_of("PUBLIC KEY", &der),
            sign: Box::new(move |m| pair.sign(m).as_ref().to_vec()),
        }
    }

    /// RSA: ring cannot generate keys, so a 2048-bit test key (made with `openssl genpkey`) is
    /// kept in tests/data/sign.
    fn rsa() -> TestKey {
        let private = include_str!("../../tests/data/sign/rsa-2048.pk8.pem");
        let public = include_str!("../../tests/data/sign/rsa-2048.pub.pem");
        let pair = RsaKeyPair::from_pkcs8(pem::parse(private).unwrap().contents()).unwrap();
        TestKey {
            public_pem: public.to_string(),
            sign: Box::new(move |m| {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    m,
                    &mut sig,
                )
                .unwrap();
                sig
            }),
        }
    }

    fn all() -> Vec<(KeyKind, TestKey)> {
        vec![
            (KeyKind::EcdsaP256, p256()),
            (
                KeyKind::EcdsaP384,
                ecdsa(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, P384_SPKI_PREFIX),
            ),
            (KeyKind::Ed25519, ed25519()),
            (KeyKind::Rsa, rsa()),
        ]
    }

    #[test]
    fn every_cosign_key_type_verifies_its_own_signature_only() {
        let other = p256();
        for (kind, key) in all() {
            let public = PublicKey::from_pem(key.public_pem.as_bytes(), "test").unwrap();
            assert_eq!(public.kind(), kind);
            let sig = (key.sign)(b"payload");
            assert!(public.verify(b"payload", &sig), "{kind}");
            assert!(!public.verify(b"payload!", &sig), "{kind}: other message");
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!public.verify(b"payload", &bad), "{kind}: flipped bit");
            assert!(
                !public.verify(b"payload", &(other.sign)(b"payload")),
                "{kind}: another key's signature"
            );
        }
    }

    #[test]
    fn p384_signatures_over_sha256_verify_as_skopeo_checks_them() {
        let key =
            PublicKey::from_pem(include_bytes!("../../tests/data/sign/p384.pub.pem"), "k").unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP384);
        let sig = include_bytes!("../../tests/data/sign/p384-sha256.sig");
        assert!(key.verify(b"payload", sig));
        assert!(!key.verify(b"payloaD", sig));
    }

    #[test]
    fn pkcs1_rsa_public_keys_are_read_too() {
        let spki = include_str!("../../tests/data/sign/rsa-2048.pub.pem");
        let der = pem::parse(spki).unwrap();
        let info = SubjectPublicKeyInfoRef::try_from(der.contents()).unwrap();
        let pkcs1 = pem_of(
            "RSA PUBLIC KEY",
            info.subject_public_key.as_bytes().unwrap(),
        );
        let key = PublicKey::from_pem(pkcs1.as_bytes(), "k").unwrap();
        assert_eq!(key.kind(), KeyKind::Rsa);
        let sig = (rsa().sign)(b"m");
        assert!(key.verify(b"m", &sig));
    }

    #[test]
    fn refuses_what_is_not_a_public_key() {
        let e = PublicKey::from_pem(b"hello", "key file k.pub").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("key file k.pub: not a PEM public key"),
            "{e}"
        );
        let private = pem_of("ENCRYPTED COSIGN PRIVATE KEY", b"{}");
        let e = PublicKey::from_pem(private.as_bytes(), "k").unwrap_err();
        assert!(e.to_string().contains("is not a public key"), "{e}");
        // A P-521 key: refused by name, not as a parse error.
        let p521 = "MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQAZ9i+FFz1BH3+aZEXnD3Xo3R6mm8c1jjeH+vglTyVvj0OKrW2TE6P4TDTF06dxH4WFaM/iPFQ2Y9+kcpWwyjPm34AQGCiP4thMIbM+nz3iDptvB4uXBt6qGE3usfXJyBeCt4SXZGfLiis52Y44HKipBr+DTY+gwpqRxE2kAYKZLWAexk=";
        let der = base64::engine::general_purpose::STANDARD
            .decode(p521)
            .unwrap();
        let e = PublicKey::from_spki_der(&der).unwrap_err();
        assert!(e.starts_with("ECDSA P-521 keys are not supported"), "{e}");
        // Truncated SPKI.
        let key = p256();
        let der = pem::parse(&key.public_pem).unwrap();
        let e = PublicKey::from_spki_der(&der.contents()[..40]).unwrap_err();
        assert!(e.contains("invalid SubjectPublicKeyInfo"), "{e}");
    }
}
