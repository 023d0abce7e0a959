//! JSON Web Tokens as an OpenID client checks them: the compact form split and decoded, the signature
//! verified against the provider's JWKS (RS256/384/512, PS256, ES256/384), and the ID token's claims
//! (`iss`, `aud`, `exp`, `nonce`) checked. Pure functions over bytes, unit-tested with tokens signed
//! here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a JWT (three base64url parts)")]
    Malformed,
    #[error("the token is signed with {0:?}, which is not accepted")]
    Algorithm(String),
    #[error("no key {kid:?} in the provider's JWKS for a {alg} token")]
    NoKey { kid: Option<String>, alg: String },
    #[error("the token's signature does not verify against the provider's keys")]
    Signature,
    #[error("the token was issued by {actual:?}, not {expected:?}")]
    Issuer { expected: String, actual: String },
    #[error("the token is for {actual:?}, not {expected:?}")]
    Audience { expected: String, actual: String },
    #[error("the token expired")]
    Expired,
    #[error("the token's nonce does not match this sign-in (a replayed or foreign token)")]
    Nonce,
}

#[derive(Debug, Clone, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// A JSON Web Key (the fields RSA and EC public keys use).
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A decoded (not yet trusted) token.
#[derive(Debug, Clone)]
pub struct Decoded {
    alg: String,
    kid: Option<String>,
    signed: Vec<u8>,
    signature: Vec<u8>,
    pub claims: Value,
}

pub fn decode(token: &str) -> Result<Decoded, JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let b64 = |x: &str| {
        URL_SAFE_NO_PAD
            .decode(x.trim_end_matches('='))
            .map_err(|_| JwtError::Malformed)
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Malformed)?;
    let claims: Value = serde_json::from_slice(&b64(p)?).map_err(|_| JwtError::Malformed)?;
    Ok(Decoded {
        alg: header.alg,
        kid: header.kid,
        signed: format!("{h}.{p}").into_bytes(),
        signature: b64(s)?,
        claims,
    })
}

fn b64(x: &Option<String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(x.as_deref()?.trim_end_matches('='))
        .ok()
}

fn verify_with(jwk: &Jwk, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
    match (jwk.kty.as_str(), alg) {
        ("RSA", "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512") => {
            let (Some(n), Some(e)) = (b64(&jwk.n), b64(&jwk.e)) else {
                return false;
            };
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(params, msg, sig)
                .is_ok()
        }
        ("EC", "ES256" | "ES384") => {
            let (Some(x), Some(y)) = (b64(&jwk.x), b64(&jwk.y)) else {
                return false;
            };
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let alg: &dyn signature::VerificationAlgorithm = if alg == "ES256" {
                &signature::ECDSA_P256_SHA256_FIXED
            } else {
                &signature::ECDSA_P384_SHA384_FIXED
            };
            UnparsedPublicKey::new(alg, &point).verify(msg, sig).is_ok()
        }
        _ => false,
    }
}

impl Decoded {
    /// Checks the signature with the key the header names (or any key of the right type when it
    /// names none). `none` and HMAC algorithms are refused: a public client has no shared secret.
    pub fn verify_signature(&self, jwks: &Jwks) -> Result<(), JwtError> {
        const ACCEPTED: &[&str] = &[
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
        ];
        if !ACCEPTED.contains(&self.alg.as_str()) {
            return Err(JwtError::Algorithm(self.alg.clone()));
        }
        let candidates: Vec<&Jwk> = jwks
            .keys
            .iter()
            .filter(|k| self.kid.is_none() || k.kid == self.kid)
            .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::NoKey {
                kid: self.kid.clone(),
                alg: self.alg.clone(),
            });
        }
        if candidates
            .iter()
            .any(|k| verify_with(k, &self.alg, &self.signed, &self.signature))
        {
            Ok(())
        } else {
            Err(JwtError::Signature)
        }
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// `exp` in seconds since the epoch.
    pub fn expires_at(&self) -> Option<u64> {
        self.claims.get("exp").and_then(Value::as_u64)
    }

    /// Whether `aud` (a string or a list) holds `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        }
    }

    /// The ID token checks of OpenID Connect Core §3.1.3.7, after the signature.
    pub fn verify_id_token(
        &self,
        issuer: &str,
        client_id: &str,
        nonce: Option<&str>,
        now: u64,
    ) -> Result<(), JwtError> {
        let iss = self.claim_str("iss").unwrap_or("");
        if iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(JwtError::Issuer {
                expected: issuer.to_string(),
                actual: iss.to_string(),
            });
        }
        if !self.has_audience(client_id) {
            return Err(JwtError::Audience {
                expected: client_id.to_string(),
                actual: self
                    .claims
                    .get("aud")
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            });
        }
        // A minute of leeway for clock skew between this machine and the provider.
        if self.expires_at().is_none_or(|exp| exp + 60 < now) {
            return Err(JwtError::Expired);
        }
        if let Some(n) = nonce {
            if self.claim_str("nonce") != Some(n) {
                return Err(JwtError::Nonce);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn es256_token(claims: &Value, kid: &str) -> (String, Jwks) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = key.public_key().as_ref();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some(kid.into()),
            use_: Some("sig".into()),
            n: None,
            e: None,
            x: Some(URL_SAFE_NO_PAD.encode(&public[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&public[33..65])),
        };
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let sig = key.sign(&rng, signing_input.as_bytes()).unwrap();
        (
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())),
            Jwks { keys: vec![jwk] },
        )
    }

    fn claims() -> Value {
        serde_json::json!({"iss":"https://idp.test","aud":["cli"],"exp":2000,"nonce":"n1","sub":"alice"})
    }

    #[test]
    fn good_token_verifies() {
        let (t, jwks) = es256_token(&claims(), "k1");
        let d = decode(&t).unwrap();
        d.verify_signature(&jwks).unwrap();
        d.verify_id_token("https://idp.test/", "cli", Some("n1"), 1000)
            .unwrap();
    }

    #[test]
    fn bad_tokens_are_refused() {
        let (t, jwks) = es256_token(&claims(), "k1");
        let (_, other_jwks) = es256_token(&claims(), "k1");
        assert_eq!(
            decode(&t).unwrap().verify_signature(&other_jwks),
            Err(JwtError::Signature)
        );
        let mut tampered: Vec<&str> = t.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(
            r#"{"iss":"https://idp.test","aud":"cli","exp":2000,"nonce":"n1","sub":"mallory"}"#,
        );
        tampered[1] = &evil;
        assert_eq!(
            decode(&tampered.join(".")).unwrap().verify_signature(&jwks),
            Err(JwtError::Signature)
        );
        let d = decode(&t).unwrap();
        assert!(matches!(
            d.verify_id_token("https://other.test", "cli", Some("n1"), 1000),
            Err(JwtError::Issuer { .. })
        ));
        assert!(matches!(
            d.verify_id_token("https://idp.test", "other", Some("n1"), 1000),
            Err(JwtError::Audience { .. })
        ));
        assert_eq!(
            d.verify_id_token("https://idp.test", "cli", Some("n2"), 1000),
            Err(JwtError::Nonce)
        );
        assert_eq!(
            d.verify_id_token("https://idp.test", "cli", Some("n1"), 5000),
            Err(JwtError::Expired)
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        assert_eq!(
            decode(&none).unwrap().verify_signature(&jwks),
            Err(JwtError::Algorithm("none".into()))
        );
        assert_eq!(decode("a.b").unwrap_err(), JwtError::Malformed);
    }
}
