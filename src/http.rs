//! The one HTTP client setup every network operation uses: rustls with the ring provider, the
//! system roots plus the CAs the user gave or installed, `--insecure` as the only way to skip
//! verification, and `--log-http` tracing with credentials redacted.
//!
//! Custom CAs are honoured everywhere: `--ca-cert-path FILE`, and for registries the
//! `certs.d/<host>/ca.crt` files that `gdcloud auth configure-docker --config-cert` installs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::header::HeaderMap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, SignatureScheme};

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

fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = std::fs::read(path).map_err(|source| Error::ReadCa {
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::BadCa {
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

/// Chain verification against the system roots plus the user's CAs, and one addition: a certificate
/// the user handed us *itself* is trusted as the server's certificate (its name still checked).
/// webpki refuses a self-signed CA:TRUE certificate as a server's own (`CaUsedAsEndEntity`), yet
/// that is what `openssl req -x509` and Docker's own registry instructions produce, and what curl,
/// skopeo and podman accept.
/// With `insecure` (`--insecure`) any certificate passes, though handshake signatures are still
/// checked.
#[derive(Debug)]
struct Verifier {
    insecure: bool,
    chain: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let chain_result = match &self.chain {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        };
        match chain_result {
            Ok(ok) => Ok(ok),
            Err(e)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = ParsedCertificate::try_from(end_entity).map_err(|_| e)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls configuration for `opts`.
pub fn tls_config(opts: &TlsOptions) -> Result<rustls::ClientConfig, Error> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Build(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut pinned = Vec::new();
    if !opts.insecure {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        for f in &opts.ca_files {
            for cert in load_ca(f)? {
                let _ = roots.add(cert.clone());
                pinned.push(cert);
            }
        }
    }
    let chain = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| Error::Build(e.to_string()))?,
        )
    };
    let verifier = Arc::new(Verifier {
        insecure: opts.insecure,
        chain,
        pinned,
        provider,
    });
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client for `opts`. Timeouts bound connection set-up and idle reads, never a whole transfer
/// (a 10 GiB layer may take long, but it must not stall).
pub fn client(opts: &TlsOptions) -> Result<reqwest::Client, Error> {
    builder(opts)?
        .build()
        .map_err(|e| Error::Build(e.to_string()))
}

/// Like [`client`], but redirects are answers, not followed: for requests whose body holds a
/// secret (a password grant), which reqwest would re-send to wherever a 307/308 points.
pub fn client_without_redirects(opts: &TlsOptions) -> Result<reqwest::Client, Error> {
    builder(opts)?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Build(e.to_string()))
}

pub(crate) fn builder(opts: &TlsOptions) -> Result<reqwest::ClientBuilder, Error> {
    let tls = tls_config(opts)?;
    Ok(reqwest::Client::builder()
        .user_agent(concat!("gdcloud-kit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(16)
        .tls_backend_preconfigured(tls))
}

/// A transport error and its causes as one line: reqwest's own message leaves out the cause that
/// explains it (refused connection, certificate rejected).
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

/// What went wrong on the way to a server, for the hint that says what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server's certificate was not trusted: a CA option is the answer.
    Certificate,
    /// Nothing listens there, or the name does not resolve.
    Unreachable,
    Other,
}

/// Classifies a transport error's text (see [`error_chain`]).
pub fn classify(text: &str) -> Failure {
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("invalid peer")
    {
        Failure::Certificate
    } else if lower.contains("connection refused")
        || lower.contains("dns")
        || lower.contains("resolve")
    {
        Failure::Unreachable
    } else {
        Failure::Other
    }
}

/// What to tell the user about a failed connection to one kind of server: what fixes an untrusted
/// certificate, and what to check when nothing answers. Each empty or starting with "; ".
#[derive(Debug, Clone, Copy)]
pub struct Hints {
    pub certificate: &'static str,
    pub unreachable: &'static str,
}

/// A transport failure described once for every client: the URL without credentials, the cause
/// chain, and the hint that fits its kind.
#[derive(Debug, Clone)]
pub struct ConnectFailure {
    pub url: String,
    pub detail: String,
    pub hint: &'static str,
}

/// Describes `e`, a failure to reach `url`, with the matching hint from `hints`. A certificate
/// failure leads with Go's words for it (`x509: certificate signed by unknown authority`): that
/// is what the runbook's known issues, Docker and every search result say.
pub fn connect_failure(url: &str, e: &reqwest::Error, hints: &Hints) -> ConnectFailure {
    let detail = error_chain(e);
    let (detail, hint) = match classify(&detail) {
        Failure::Certificate => (x509_words(&detail), hints.certificate),
        Failure::Unreachable => (detail, hints.unreachable),
        Failure::Other => (detail, ""),
    };
    ConnectFailure {
        url: redact_url(url),
        detail,
        hint,
    }
}

/// A certificate failure's cause (rustls's words) prefixed with Go's `x509:` phrase for it.
pub fn x509_words(detail: &str) -> String {
    let lower = detail.to_ascii_lowercase();
    // A self-signed certificate nobody trusts fails in webpki as `CaUsedAsEndEntity`; Go calls
    // that an unknown authority too.
    let go = if lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("causedasendentity")
    {
        "x509: certificate signed by unknown authority"
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        "x509: certificate is not valid for this host name"
    } else if lower.contains("expired") || lower.contains("notvalidyet") {
        "x509: certificate has expired or is not yet valid"
    } else {
        "x509: certificate not trusted"
    };
    format!("{go} ({detail})")
}

/// What a client checked a server's certificate against, for the message that says it was not
/// trusted: the system roots and each extra CA file by path.
pub fn checked_against(host: &str, ca_files: &[PathBuf]) -> String {
    let mut text = format!("checked {host} against the system roots");
    if !ca_files.is_empty() {
        let files: Vec<String> = ca_files.iter().map(|f| f.display().to_string()).collect();
        text.push_str(" and ");
        text.push_str(&files.join(", "));
    }
    text
}

/// The `host[:port]` of `url`, for messages (the URL itself when it has no host).
pub fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Whether retrying `e` is pointless: a request that could not be built, a refused connection, a
/// rejected certificate, or TLS spoken to a plain-HTTP server.
pub fn is_permanent(e: &reqwest::Error) -> bool {
    // The Debug form names the rustls/io error kinds the Display chain may word differently.
    let text = format!("{} {e:?}", error_chain(e)).to_ascii_lowercase();
    e.is_builder()
        || classify(&text) == Failure::Certificate
        || text.contains("connection refused")
        || text.contains("invalidcontenttype")
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
    fn certificate_failures_use_go_words() {
        let d = "error sending request: invalid peer certificate: UnknownIssuer";
        assert_eq!(
            x509_words(d),
            format!("x509: certificate signed by unknown authority ({d})")
        );
        assert!(x509_words("invalid peer certificate: NotValidForName")
            .starts_with("x509: certificate is not valid for this host name"));
        assert_eq!(host_of("https://h.io:5000/v2/"), "h.io:5000");
        assert_eq!(
            checked_against("h.io", &[PathBuf::from("/c/ca.crt")]),
            "checked h.io against the system roots and /c/ca.crt"
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://u:p@h/x?X-Amz-Signature=abc&n=1"),
            "https://h/x?X-Amz-Signature=%3Credacted%3E&n=1"
        );
        assert_eq!(redact_url("https://h/v2/"), "https://h/v2/");
    }
}
