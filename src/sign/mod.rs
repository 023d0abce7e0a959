//! Offline verification of cosign signatures ("simple signing" payloads in `sha256-<hex>.sig`
//! tags), as podman and skopeo check a policy.json `sigstoreSigned` requirement, without a
//! transparency log: the air-gapped side has none to ask, and every report says so.
//!
//! Pure and synchronous: callers (ops::verify, and pull, extract and later bundle loads) fetch
//! the `.sig` manifest and its layers from a registry or an OCI layout, bounded and
//! digest-checked, and hand them here as [`Signature`]s. `key` reads public keys, `payload` the
//! signed document, `identity` the `signedIdentity` rules, `policy` the policy.json scopes, and
//! `verify` makes the checks.

mod identity;
mod key;
mod payload;
mod policy;
mod verify;

use std::path::Path;

pub use identity::{DockerRef, SignedIdentity};
pub use key::{KeyKind, PublicKey};
pub use payload::{MEDIA_TYPE, SIGNATURE_ANNOTATION};
pub use policy::{Policy, Requirement, Verdict};
pub use verify::{Signature, Subject};

use crate::bounded;
use crate::oci::Digest;

/// What every report says about the transparency log.
pub const NO_TRANSPARENCY_LOG: &str = "no transparency log checked (offline verification)";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },
    #[error("{what}: {reason}")]
    Policy { what: String, reason: String },
    #[error("read {path}: {source}; check the path given with --key or --policy (or in the policy's keyPath)")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// The tag cosign stores an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.hex())
}

/// Reads a small file a user named (a key, a policy), bounded.
fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    let err = |source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    bounded::read(file, bounded::STATE, &format!("{}", path.display())).map_err(err)
}

/// `--key FILE`: a policy requiring this key's signature on every image.
pub fn policy_from_key_file(path: &Path) -> Result<Policy, Error> {
    let pem = read_file(path)?;
    Ok(Policy::from_key(PublicKey::from_pem(
        &pem,
        &format!("key file {}", path.display()),
    )?))
}

/// `--policy FILE`: a containers policy.json; its `keyPath` files are read now.
pub fn policy_from_file(path: &Path) -> Result<Policy, Error> {
    let json = read_file(path)?;
    Policy::parse(&json, &format!("policy {}", path.display()), &read_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tags_are_cosigns() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
    }
}
