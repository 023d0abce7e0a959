//! `gdcloud storage configure`, `env` and `exec`: the runbook's step 2 made safe. The bucket key is
//! read from its Kubernetes secret and written into the gdcloud configuration (atomically, 0600)
//! without ever being shown, or handed to another S3 tool through its environment only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::Config;
use crate::kube::{self, Cluster};
use crate::secret::Secret;

pub const ACCESS_KEY_PROPERTY: &str = "storage/s3_access_key_id";
pub const SECRET_KEY_PROPERTY: &str = "storage/s3_secret_access_key";
pub const ENDPOINT_PROPERTY: &str = "storage/s3_endpoint";
pub const CA_PROPERTY: &str = "storage/s3_custom_ca_certs_file";
/// The region requests are signed for (default `us-east-1`; the client learns the server's).
pub const REGION_PROPERTY: &str = "storage/s3_region";
/// `path` (default), `virtual` or `auto`: where the bucket goes in a request's URL.
pub const ADDRESSING_PROPERTY: &str = "storage/s3_addressing_style";

pub const DEFAULT_NAMESPACE: &str = "object-storage-access-keys";
const SECRET_PREFIX: &str = "object-storage-key-";
const SUBJECT_ANNOTATION: &str = "object.gdc.goog/subject";
/// The role that lets a user read bucket keys (the runbook's prerequisite).
const VIEWER_ROLE: &str = "project-bucket-object-viewer";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Kube(Box<kube::Error>),
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("no {SECRET_PREFIX}* secret in namespace {0}: ask the platform admin for access to the bucket (role {VIEWER_ROLE})")]
    NoSecret(String),
    #[error("several bucket keys in namespace {namespace}: {list}; choose one with --secret NAME")]
    SeveralSecrets { namespace: String, list: String },
    #[error("{0}; nothing was written")]
    BadSecret(String),
    #[error("configmap dnssuffix in gpc-system has no usable dnsSuffix; pass --endpoint URL (nothing was written)")]
    NoDnsSuffix,
    #[error("no S3 settings in configuration {0}: run `gdcloud storage configure` (or pass --secret NAME)")]
    NotConfigured(String),
    #[error("invalid endpoint {0:?}: give an https:// (or http://) URL")]
    BadEndpoint(String),
    #[error("{0}; pass --endpoint URL to skip reading the DNS suffix (nothing was written)")]
    DnsSuffix(Box<kube::Error>),
    #[error("cannot use the CA file {0}: {1} (nothing was written)")]
    BadCaFile(PathBuf, String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(Box::new(e))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub secret: Option<String>,
    pub namespace: Option<String>,
    pub endpoint: Option<String>,
    pub ca_cert_path: Option<PathBuf>,
    pub cluster: kube::Options,
}

/// The S3 settings one command uses.
#[derive(Debug, Clone, Serialize)]
pub struct S3Settings {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub endpoint: String,
    pub ca_file: Option<PathBuf>,
    /// [`REGION_PROPERTY`], when set.
    pub region: Option<String>,
    /// [`ADDRESSING_PROPERTY`], when set.
    pub addressing: Option<String>,
    /// Where `endpoint` came from, for messages about it: the property and its configuration, the
    /// environment variable, the flag, or the cluster.
    #[serde(skip)]
    pub endpoint_origin: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub configuration: String,
    pub file: PathBuf,
    pub secret: String,
    pub namespace: String,
    /// The access key with all but its last four characters hidden.
    pub access_key_id: String,
    pub endpoint: String,
    pub ca_file: Option<PathBuf>,
    /// Each property written and where its value came from (the secret key masked).
    pub recorded: Vec<super::config::Recorded>,
}

/// `AKIA…WXYZ` → `****************WXYZ`. The key comes from a Kubernetes secret, so the part
/// shown goes through [`crate::text::escape`]: a control character in it is printed as a visible
/// escape, never sent to the terminal.
pub fn mask(key: &str) -> String {
    let n = key.chars().count();
    let shown: String = key.chars().skip(n.saturating_sub(4)).collect();
    format!(
        "{}{}",
        "*".repeat(n.saturating_sub(4).max(4)),
        crate::text::escape(&shown)
    )
}

fn check_endpoint(e: &str) -> Result<String, Error> {
    let e = e.trim().trim_end_matches('/');
    if (e.starts_with("https://") || e.starts_with("http://")) && url::Url::parse(e).is_ok() {
        Ok(e.to_string())
    } else {
        Err(Error::BadEndpoint(e.to_string()))
    }
}

/// Which bucket-key secret to use: the one named, else the only `object-storage-key-*` one.
async fn choose_secret(
    cluster: &Cluster,
    namespace: &str,
    named: Option<&str>,
) -> Result<k8s_openapi::api::core::v1::Secret, Error> {
    if let Some(n) = named {
        return Ok(cluster.secret(namespace, n, Some(VIEWER_ROLE)).await?);
    }
    let keys: Vec<_> = cluster
        .secrets(namespace, Some(VIEWER_ROLE))
        .await?
        .into_iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(SECRET_PREFIX))
        })
        .collect();
    match keys.len() {
        0 => Err(Error::NoSecret(namespace.to_string())),
        1 => Ok(keys.into_iter().next().expect("one")),
        _ => {
            let describe = |s: &k8s_openapi::api::core::v1::Secret| {
                let name = s.metadata.name.clone().unwrap_or_default();
                let subject = s
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(SUBJECT_ANNOTATION))
                    .cloned()
                    .unwrap_or_else(|| "-".into());
                let class = s
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l: &BTreeMap<String, String>| {
                        l.iter()
                            .find(|(k, _)| {
                                k.contains("storage-class") || k.contains("storageclass")
                            })
                            .map(|(_, v)| v.clone())
                    })
                    .unwrap_or_else(|| "-".into());
                format!("{name} (subject {subject}, storage class {class})")
            };
            Err(Error::SeveralSecrets {
                namespace: namespace.to_string(),
                list: keys.iter().map(describe).collect::<Vec<_>>().join(", "),
            })
        }
    }
}

/// Reads the bucket key (and the endpoint) from the cluster.
pub async fn from_cluster(opts: &Options) -> Result<(S3Settings, String, String), Error> {
    let cluster = kube::connect(&opts.cluster).await?;
    let namespace = opts
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let secret = choose_secret(&cluster, &namespace, opts.secret.as_deref()).await?;
    let name = secret.metadata.name.clone().unwrap_or_default();
    let access = kube::secret_text(&secret, "access-key-id").map_err(Error::BadSecret)?;
    let secret_key = kube::secret_text(&secret, "secret-access-key").map_err(Error::BadSecret)?;
    let endpoint_origin = if opts.endpoint.is_some() {
        "--endpoint".to_string()
    } else {
        "the cluster's dnsSuffix (configmap dnssuffix in gpc-system)".to_string()
    };
    let endpoint = match &opts.endpoint {
        Some(e) => check_endpoint(e)?,
        None => {
            let suffix = cluster
                .dns_suffix()
                .await
                .map_err(|e| Error::DnsSuffix(Box::new(e)))?
                .ok_or(Error::NoDnsSuffix)?;
            format!("https://objectstorage.{suffix}")
        }
    };
    let ca_file = match &opts.ca_cert_path {
        Some(p) => Some(
            std::fs::canonicalize(p)
                .and_then(|abs| std::fs::File::open(&abs).map(|_| abs))
                .map_err(|e| Error::BadCaFile(p.clone(), e.to_string()))?,
        ),
        None => None,
    };
    Ok((
        S3Settings {
            access_key_id: access,
            secret_access_key: Secret::new(secret_key),
            endpoint,
            ca_file,
            region: None,
            addressing: None,
            endpoint_origin,
        },
        name,
        namespace,
    ))
}

pub async fn configure(config: &mut Config, opts: &Options) -> Result<Report, Error> {
    let (s, secret, namespace) = from_cluster(opts).await?;
    let mut pairs = vec![
        (ACCESS_KEY_PROPERTY, s.access_key_id.clone()),
        (
            SECRET_KEY_PROPERTY,
            s.secret_access_key.expose().to_string(),
        ),
        (ENDPOINT_PROPERTY, s.endpoint.clone()),
    ];
    if let Some(ca) = &s.ca_file {
        pairs.push((CA_PROPERTY, ca.display().to_string()));
    }
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config.set_many(&refs)?;
    let from_secret = format!("secret {namespace}/{secret}");
    let endpoint_source = match &opts.endpoint {
        Some(_) => "--endpoint".to_string(),
        None => format!(
            "configmap {}/{}",
            kube::DNS_SUFFIX_NAMESPACE,
            kube::DNS_SUFFIX_CONFIGMAP
        ),
    };
    let mut shown = vec![
        (
            ACCESS_KEY_PROPERTY,
            mask(&s.access_key_id),
            from_secret.clone(),
        ),
        (
            SECRET_KEY_PROPERTY,
            super::config::MASK.to_string(),
            from_secret,
        ),
        (ENDPOINT_PROPERTY, s.endpoint.clone(), endpoint_source),
    ];
    if let Some(ca) = &s.ca_file {
        shown.push((
            CA_PROPERTY,
            ca.display().to_string(),
            "--ca-cert-path".into(),
        ));
    }
    let recorded = shown
        .into_iter()
        .map(|(property, value, source)| super::config::Recorded {
            configuration: config.name().to_string(),
            property: property.to_string(),
            value,
            source,
        })
        .collect();
    Ok(Report {
        recorded,
        configuration: config.name().to_string(),
        file: config.path(),
        secret,
        namespace,
        access_key_id: mask(&s.access_key_id),
        endpoint: s.endpoint,
        ca_file: s.ca_file,
    })
}

/// The settings one command uses: from the cluster when a secret is named, else from the
/// configuration (`configure` wrote it), with the endpoint and CA given overriding it.
pub async fn settings(config: &Config, opts: &Options) -> Result<S3Settings, Error> {
    if opts.secret.is_some() {
        let mut s = from_cluster(opts).await?.0;
        s.region = config.get(REGION_PROPERTY);
        s.addressing = config.get(ADDRESSING_PROPERTY);
        return Ok(s);
    }
    let mut s = from_config(config)?;
    if let Some(e) = &opts.endpoint {
        s.endpoint = e.clone();
        s.endpoint_origin = "--endpoint".to_string();
    }
    if let Some(c) = &opts.ca_cert_path {
        s.ca_file = Some(c.clone());
    }
    Ok(s)
}

/// The S3 settings of the configuration.
pub fn from_config(config: &Config) -> Result<S3Settings, Error> {
    let get = |p| config.get(p);
    match (
        get(ACCESS_KEY_PROPERTY),
        get(SECRET_KEY_PROPERTY),
        get(ENDPOINT_PROPERTY),
    ) {
        (Some(a), Some(s), Some(e)) => Ok(S3Settings {
            access_key_id: a,
            secret_access_key: Secret::new(s),
            endpoint: e,
            ca_file: get(CA_PROPERTY).map(PathBuf::from),
            region: get(REGION_PROPERTY),
            addressing: get(ADDRESSING_PROPERTY),
            endpoint_origin: origin(config, ENDPOINT_PROPERTY),
        }),
        _ => Err(Error::NotConfigured(config.name().to_string())),
    }
}

/// Where a property's value comes from: its environment variable when set, else the property in
/// the configuration.
fn origin(config: &Config, property: &str) -> String {
    let var = crate::config::Property::parse(property).map(|p| p.env_var());
    match var {
        Ok(v) if std::env::var_os(&v).is_some() => v,
        _ => format!("{property} in configuration {}", config.name()),
    }
}

/// The variables other S3 tools read (aws-cli, rclone with env_auth, boto3, the AWS SDKs).
pub fn environment(s: &S3Settings) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("AWS_ACCESS_KEY_ID", s.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            s.secret_access_key.expose().to_string(),
        ),
        ("AWS_ENDPOINT_URL", s.endpoint.clone()),
    ];
    if let Some(ca) = &s.ca_file {
        vars.push(("AWS_CA_BUNDLE", ca.display().to_string()));
    }
    if let Some(r) = &s.region {
        vars.push(("AWS_REGION", r.clone()));
        vars.push(("AWS_DEFAULT_REGION", r.clone()));
    }
    vars
}

/// Variables that would override or spoil the ones [`environment`] sets if a tool inherited them:
/// a session token left from other AWS keys fails every signature, and the S3-specific endpoint
/// wins over `AWS_ENDPOINT_URL` in the SDKs and the aws CLI.
pub const STALE_VARIABLES: &[&str] = &[
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_S3",
];

/// Quotes `v` for a POSIX shell.
pub fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// Quotes `v` for fish, where a backslash inside single quotes escapes `\\` and `'`.
pub fn fish_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', r"\\").replace('\'', r"\'"))
}

/// Quotes `v` for PowerShell, where a single-quoted string only doubles its quote, and the
/// typographic single quotes count as quotes too.
pub fn powershell_quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('\'');
    for c in v.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_and_quoting() {
        assert_eq!(mask("AKIAABCDEFGH1234"), "************1234");
        assert_eq!(mask("ab"), "****ab");
        assert_eq!(mask("AKIAABCD\x1b]0\x07"), "********\\x1b]0\\x07");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(fish_quote(r"a\b'c\\"), r"'a\\b\'c\\\\'");
        assert_eq!(powershell_quote("it's $x"), "'it''s $x'");
        assert_eq!(powershell_quote("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert!(check_endpoint("ftp://x").is_err());
        assert_eq!(
            check_endpoint("https://objectstorage.org.test/").unwrap(),
            "https://objectstorage.org.test"
        );
    }
}
