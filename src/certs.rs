//! Installing a registry's CA where Docker, podman, buildah and skopeo look for it, the lasting fix for
//! the runbook's "x509: certificate signed by unknown authority".
//!
//! Docker reads `<certs.d>/<host[:port]>/ca.crt` under `/etc/docker/certs.d` (root) or
//! `~/.docker/certs.d`; the containers tools read `/etc/containers/certs.d` (root) or
//! `~/.config/containers/certs.d` (containers-certs.d(5)).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("read CA certificate {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} holds no PEM certificate (-----BEGIN CERTIFICATE-----); pass the registry's CA in PEM form")]
    NotPem(PathBuf),
    #[error("install CA certificate at {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot find the home directory: set HOME")]
    NoHome,
}

/// The system `certs.d` roots: Docker's, then the containers tools'.
const SYSTEM_ROOTS: [&str; 2] = ["/etc/docker/certs.d", "/etc/containers/certs.d"];
/// The per-user `certs.d` roots under the home directory, in the same order.
const USER_ROOTS: [&str; 2] = [".docker/certs.d", ".config/containers/certs.d"];

/// The `certs.d` roots this user installs into: the system ones for root, else the home ones.
pub fn certs_dirs() -> Result<Vec<PathBuf>, Error> {
    if crate::fs::is_root() {
        return Ok(SYSTEM_ROOTS.iter().map(PathBuf::from).collect());
    }
    let home = dirs::home_dir().ok_or(Error::NoHome)?;
    Ok(USER_ROOTS.iter().map(|r| home.join(r)).collect())
}

/// The CA files installed for `host` by `configure-docker --config-cert` (and by hand, Docker's and
/// the containers tools' way), in both the system and the user roots: what a client trusts.
pub fn installed_cas(host: &str) -> Vec<PathBuf> {
    let home = dirs::home_dir();
    let roots = SYSTEM_ROOTS.iter().map(PathBuf::from).chain(
        home.iter()
            .flat_map(|h| USER_ROOTS.iter().map(move |r| h.join(r))),
    );
    let mut found = Vec::new();
    for root in roots {
        let Ok(entries) = fs::read_dir(root.join(host)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect();
        files.sort();
        found.extend(files);
    }
    found
}

/// Reads and checks a PEM CA bundle.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, Error> {
    let data = fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !contains_pem_certificate(&data) {
        return Err(Error::NotPem(path.to_path_buf()));
    }
    Ok(data)
}

fn contains_pem_certificate(data: &[u8]) -> bool {
    let needle = b"-----BEGIN CERTIFICATE-----";
    data.windows(needle.len()).any(|w| w == needle)
}

/// The files [`install`] writes for `host`.
pub fn targets(host: &str) -> Result<Vec<PathBuf>, Error> {
    Ok(certs_dirs()?
        .into_iter()
        .map(|d| d.join(host).join("ca.crt"))
        .collect())
}

/// Writes `ca` as `ca.crt` for `host` in every `certs.d` (0644: certificates are public).
pub fn install(host: &str, ca: &[u8]) -> Result<Vec<PathBuf>, Error> {
    let files = targets(host)?;
    for file in &files {
        if fs::read(file).ok().as_deref() == Some(ca) {
            continue;
        }
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).map_err(|source| Error::Write {
                path: file.clone(),
                source,
            })?;
        }
        atomic::write(file, ca, 0o644).map_err(|source| Error::Write {
            path: file.clone(),
            source,
        })?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_detection() {
        assert!(contains_pem_certificate(
            b"junk\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        ));
        assert!(!contains_pem_certificate(b"-----BEGIN PRIVATE KEY-----"));
    }
}
