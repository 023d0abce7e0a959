//! The one HTTP client setup every network operation uses: rustls with the ring provider, the
//! system roots plus the CAs the user gave or installed, `--insecure` as the only way to skip
//! verification, and `--log-http` tracing with credentials redacted.
//!
//! Custom CAs are honoured everywhere: `--ca-cert-path FILE`, and for registries the
//! `certs.d/<host>/ca.crt` files that `gdcloud auth configure-docker --config-cert` installs.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use reqwest::header::HeaderMap;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("read CA certificate {path}: {source}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM certificate: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("set up the HTTP client: {0}")]
    Build(String),
}

/// How to reach a server.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Skip certificate verification (`--insecure`).
    pub insecure: bool,
    /// Extra CA bundles (PEM) to trust besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Trace requests on stderr (`--log-http`).
    pub log_http: bool,
}

/// Installs the process-wide rustls provider once: two providers linked in make rustls refuse to
/// pick one at run time.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let pem = std::fs::read(path).map_err(|source| Error::ReadCa {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::BadCa {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(Error::BadCa {
            path: path.to_path_buf(),
            reason: "no -----BEGIN CERTIFICATE----- block".into(),
        });
    }
    Ok(certs)
}

/// A client for `opts`. Timeouts bound connection set-up and idle reads, never a whole transfer
/// (a 10 GiB layer may take long, but it must not stall).
pub fn client(opts: &TlsOptions) -> Result<reqwest::Client, Error> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("gdcloud-kit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(16)
        .tls_danger_accept_invalid_certs(opts.insecure);
    for f in &opts.ca_files {
        builder = builder.tls_certs_merge(load_ca(f)?);
    }
    builder.build().map_err(|e| Error::Build(e.to_string()))
}

/// The CA files installed for `host` by `configure-docker --config-cert` (and by hand, Docker's and
/// the containers tools' way), in both the system and the user locations.
pub fn installed_cas(host: &str) -> Vec<PathBuf> {
    let mut roots = vec![
        PathBuf::from("/etc/docker/certs.d"),
        PathBuf::from("/etc/containers/certs.d"),
    ];
    if let Some(home) = dirs::home_dir() {
        roots.push(home.join(".docker/certs.d"));
        roots.push(home.join(".config/containers/certs.d"));
    }
    let mut found = Vec::new();
    for root in roots {
        let dir = root.join(host);
        let Ok(entries) = std::fs::read_dir(&dir) else {
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

/// Prints one request/response line pair for `--log-http`, with credentials redacted.
pub fn log_exchange(method: &str, url: &str, status: Option<u16>, headers: &HeaderMap) {
    let mut line = format!("HTTP {method} {}", redact_url(url));
    if let Some(s) = status {
        line.push_str(&format!(" -> {s}"));
    }
    for (name, value) in headers {
        let shown = if is_sensitive(name.as_str()) {
            "<redacted>".to_string()
        } else {
            value.to_str().unwrap_or("<binary>").to_string()
        };
        line.push_str(&format!("\n    {name}: {shown}"));
    }
    eprintln!("{line}");
}

fn is_sensitive(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-amz-security-token"
    )
}

/// Drops userinfo and signed query parameters from a URL before it is shown.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_string();
    };
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let k = k.into_owned();
            let lower = k.to_ascii_lowercase();
            let secret = lower.contains("signature")
                || lower.contains("token")
                || lower.contains("credential")
                || lower == "password";
            (
                k,
                if secret {
                    "<redacted>".into()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if pairs.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:p@h/x?X-Amz-Signature=abc&n=1"),
            "https://h/x?X-Amz-Signature=%3Credacted%3E&n=1"
        );
        assert_eq!(redact_url("https://h/v2/"), "https://h/v2/");
    }
}
