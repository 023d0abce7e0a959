//! Cosign signatures made by a real signer for tests that need signed images in a registry:
//! a P-256 key in cosign's encrypted format (scrypt + NaCl secretbox over PKCS#8, which
//! sigstore-rs reads) and [`sign`], which signs an image of a plain-HTTP, htpasswd registry with
//! sigstore-rs into its `sha256-<hex>.sig` tag, as `cosign sign` does. Shared by the verify, save and
//! bundle tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::json;

use super::registry::Registry;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The passphrase of every test signing key (given to skopeo in a file, never in argv).
pub const PASSPHRASE: &str = "correct horse battery staple";

/// A P-256 key pair as cosign stores it: `NAME.key` (encrypted), `NAME.pub`, and the
/// passphrase in `NAME.pass`.
pub struct SigningKey {
    pub private: PathBuf,
    pub public: PathBuf,
    pub passphrase: PathBuf,
}

fn pem(tag: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {tag}-----\n{}\n-----END {tag}-----\n",
        lines.join("\n")
    )
}

/// cosign's private key format (go-tuf `encrypted`, as skopeo 1.9.3 reads it in
/// containers/image `signature/sigstore/copied.go`): JSON holding the scrypt parameters
/// (exactly N=32768, r=8, p=1: other values are refused), the secretbox nonce and the sealed
/// PKCS#8 (tag first, as NaCl writes it), under PEM type `ENCRYPTED COSIGN PRIVATE KEY`.
fn encrypt_private_key(pkcs8: &[u8]) -> String {
    let rng = SystemRandom::new();
    let (mut salt, mut nonce, mut key) = ([0u8; 32], [0u8; 24], [0u8; 32]);
    rng.fill(&mut salt).unwrap();
    rng.fill(&mut nonce).unwrap();
    let params = scrypt::Params::new(15, 8, 1).unwrap();
    scrypt::scrypt(PASSPHRASE.as_bytes(), &salt, &params, &mut key).unwrap();
    let sealed = XSalsa20Poly1305::new(&key.into())
        .encrypt(&nonce.into(), pkcs8)
        .unwrap();
    let doc = json!({
        "kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": B64.encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": B64.encode(nonce)},
        "ciphertext": B64.encode(sealed),
    });
    pem("ENCRYPTED COSIGN PRIVATE KEY", doc.to_string().as_bytes())
}

impl SigningKey {
    pub fn new(dir: &Path, name: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // SubjectPublicKeyInfo of a P-256 key (RFC 5480): a fixed prefix, then the point.
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(pair.public_key().as_ref());
        let key = SigningKey {
            private: dir.join(format!("{name}.key")),
            public: dir.join(format!("{name}.pub")),
            passphrase: dir.join(format!("{name}.pass")),
        };
        fs::write(&key.private, encrypt_private_key(pkcs8.as_ref())).unwrap();
        fs::write(&key.public, pem("PUBLIC KEY", &spki)).unwrap();
        fs::write(&key.passphrase, PASSPHRASE).unwrap();
        key
    }
}

/// Signs `reference` (`repo:tag` or `repo@digest` on `reg`, plain HTTP, htpasswd) with `key`:
/// the payload names `HOST/reference` and the manifest digest, under the digest's `.sig` tag.
pub fn sign(reg: &Registry, reference: &str, key: &SigningKey) {
    use sigstore::cosign::constraint::{Constraint, PrivateKeySigner};
    use sigstore::cosign::CosignCapabilities;
    let image: sigstore::registry::OciReference =
        format!("{}/{reference}", reg.host).parse().unwrap();
    let signer = PrivateKeySigner::new_with_raw(
        zeroize::Zeroizing::new(fs::read(&key.private).unwrap()),
        zeroize::Zeroizing::new(PASSPHRASE.as_bytes().to_vec()),
        &sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1,
    )
    .expect("sigstore-rs reads the encrypted cosign key");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = sigstore::registry::ClientConfig {
            protocol: sigstore::registry::ClientProtocol::Http,
            ..Default::default()
        };
        let mut client = sigstore::cosign::ClientBuilder::default()
            .with_oci_client_config(config)
            .build()
            .unwrap();
        let auth = sigstore::registry::Auth::Basic(reg.username.clone(), reg.password.clone());
        let (sig_image, digest) = client.triangulate(&image, &auth).await.unwrap();
        let mut layer = sigstore::cosign::SignatureLayer::new_unsigned(&image, &digest).unwrap();
        assert!(signer.add_constraint(&mut layer).unwrap(), "signed");
        client
            .push_signature(None, &auth, &sig_image, vec![layer])
            .await
            .unwrap();
    });
}
