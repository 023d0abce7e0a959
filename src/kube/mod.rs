//! Reading what the GDC cluster holds — bucket key secrets, the DNS suffix, the Harbor cluster and
//! its admin secret — with the user's kubeconfig, and errors that say which cluster refused what
//! and what to do (log in again, or which role to ask the Security Admin for).
//!
//! Kubeconfig: `--kubeconfig` > `KUBECONFIG` (several files merged) > `~/.kube/config`, with the
//! context chosen by `--context`; CA, client certificates, tokens, `insecure-skip-tls-verify` and
//! exec credential plugins are all honoured (the `kube` crate does that part).

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot load the kubeconfig{}: {reason}; pass --kubeconfig FILE (e.g. from `gdcloud clusters get-credentials`)", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Kubeconfig {
        path: Option<PathBuf>,
        reason: String,
    },
    #[error("the kubeconfig{} has no context {}: {}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default(), crate::text::Escaped(.context), if available.is_empty() { "it has none; get one with `gdcloud clusters get-credentials`".to_string() } else { format!("pass --context with one of: {}", available.iter().map(|c| crate::text::escape(c).into_owned()).collect::<Vec<_>>().join(", ")) })]
    UnknownContext {
        path: Option<PathBuf>,
        context: String,
        available: Vec<String>,
    },
    #[error("cluster {cluster}: {detail}; checked {server} against the certificate-authority of cluster {cluster} in the kubeconfig (else the system roots): get a fresh kubeconfig (`gdcloud clusters get-credentials`) or fix its certificate-authority-data")]
    Trust {
        cluster: String,
        server: String,
        detail: String,
    },
    #[error("cluster {cluster} rejected the credentials of {user} (401): run the login / `gdcloud clusters get-credentials` step again")]
    Unauthorized { cluster: String, user: String },
    #[error("cluster {cluster}: {user} cannot {verb} {resource} in namespace {namespace} (403){}", role.map(|r| format!("; ask the Security Admin for the {r} role in that namespace")).unwrap_or_default())]
    Forbidden {
        cluster: String,
        user: String,
        verb: &'static str,
        resource: String,
        namespace: String,
        role: Option<&'static str>,
    },
    #[error("cluster {cluster}: no {resource} {name:?} in namespace {namespace}{}", if available.is_empty() { String::new() } else { format!(" (there is: {})", available.join(", ")) })]
    NotFound {
        cluster: String,
        resource: String,
        name: String,
        namespace: String,
        available: Vec<String>,
    },
    #[error("cluster {cluster}: {detail}")]
    Api { cluster: String, detail: String },
    #[error("cluster {cluster}: configmap {DNS_SUFFIX_NAMESPACE}/{DNS_SUFFIX_CONFIGMAP} holds dnsSuffix \"{}\", which is not a DNS name ({reason}); ask the platform admin to fix it", crate::text::Escaped(.value))]
    BadDnsSuffix {
        cluster: String,
        value: String,
        reason: &'static str,
    },
}

/// Where the organisation's DNS suffix is kept: `objectstorage.<dnsSuffix>` is the S3 endpoint,
/// `harbor.<dnsSuffix>` the registry.
pub const DNS_SUFFIX_NAMESPACE: &str = "gpc-system";
pub const DNS_SUFFIX_CONFIGMAP: &str = "dnssuffix";
pub const DNS_SUFFIX_KEY: &str = "dnsSuffix";

/// `value` (a trailing dot allowed, ASCII case ignored) as a lower-case DNS name, or why it is
/// not one. Only letters, digits and `-` in labels of 1 to 63 characters that neither start nor
/// end with `-`, 253 characters at most: the suffix becomes the host of a URL, and anything
/// more (`x@evil:443/`, a `/`, a `:`, spaces) would let the configmap choose another host.
pub fn check_dns_name(value: &str) -> std::result::Result<String, &'static str> {
    let name = value.trim().trim_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("an empty label");
        }
        if label.len() > 63 {
            return Err("a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
    }
    Ok(name)
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A connected client and the names used in messages.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    /// The kubeconfig's cluster name (else the server URL).
    pub name: String,
    pub user: String,
    /// The API server's `host:port`, for messages.
    pub server: String,
}

pub async fn connect(opts: &Options) -> Result<Cluster> {
    crate::http::install_crypto_provider();
    let kc_err = |reason: String| Error::Kubeconfig {
        path: opts.kubeconfig.clone(),
        reason,
    };
    let kubeconfig = match &opts.kubeconfig {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(|e| kc_err(e.to_string()))?;
    let context_name = opts
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let context = context_name
        .as_ref()
        .and_then(|n| kubeconfig.contexts.iter().find(|c| &c.name == n))
        .and_then(|c| c.context.clone());
    if let (Some(want), None) = (&opts.context, &context) {
        return Err(Error::UnknownContext {
            path: opts.kubeconfig.clone(),
            context: want.clone(),
            available: kubeconfig.contexts.iter().map(|c| c.name.clone()).collect(),
        });
    }
    let cluster_name = context
        .as_ref()
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let user = context
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_else(|| "the configured user".into());
    let options = KubeConfigOptions {
        context: opts.context.clone(),
        cluster: None,
        user: None,
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| kc_err(e.to_string()))?;
    let name = if cluster_name.is_empty() {
        config.cluster_url.to_string()
    } else {
        cluster_name
    };
    let server = crate::http::host_of(&config.cluster_url.to_string());
    let client = kube::Client::try_from(config).map_err(|e| kc_err(e.to_string()))?;
    Ok(Cluster {
        client,
        name,
        user,
        server,
    })
}

impl Cluster {
    fn map(
        &self,
        e: kube::Error,
        verb: &'static str,
        resource: &str,
        name: &str,
        namespace: &str,
        role: Option<&'static str>,
    ) -> Error {
        match e {
            kube::Error::Api(status) => match status.code {
                401 => Error::Unauthorized {
                    cluster: self.name.clone(),
                    user: self.user.clone(),
                },
                403 => Error::Forbidden {
                    cluster: self.name.clone(),
                    user: self.user.clone(),
                    verb,
                    resource: resource.to_string(),
                    namespace: namespace.to_string(),
                    role,
                },
                404 => Error::NotFound {
                    cluster: self.name.clone(),
                    resource: resource.to_string(),
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                    available: Vec::new(),
                },
                _ => Error::Api {
                    cluster: self.name.clone(),
                    detail: status.message.clone(),
                },
            },
            other => {
                let mut detail = other.to_string();
                let mut cause = std::error::Error::source(&other);
                while let Some(c) = cause {
                    let text = c.to_string();
                    if !detail.contains(&text) {
                        detail.push_str(": ");
                        detail.push_str(&text);
                    }
                    cause = c.source();
                }
                if crate::http::classify(&detail) == crate::http::Failure::Certificate {
                    Error::Trust {
                        cluster: self.name.clone(),
                        server: self.server.clone(),
                        detail: crate::http::x509_words(&detail),
                    }
                } else {
                    Error::Api {
                        cluster: self.name.clone(),
                        detail,
                    }
                }
            }
        }
    }

    /// A secret's data, decoded (the API returns it base64-decoded already).
    pub async fn secret(
        &self,
        namespace: &str,
        name: &str,
        role: Option<&'static str>,
    ) -> Result<KubeSecret> {
        let api: Api<KubeSecret> = Api::namespaced(self.client.clone(), namespace);
        match api.get(name).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let mut err = self.map(e, "get", "secrets", name, namespace, role);
                if let Error::NotFound { available, .. } = &mut err {
                    if let Ok(list) = api.list(&ListParams::default()).await {
                        *available = list
                            .items
                            .iter()
                            .filter_map(|s| s.metadata.name.clone())
                            .take(10)
                            .collect();
                    }
                }
                Err(err)
            }
        }
    }

    pub async fn secrets(
        &self,
        namespace: &str,
        role: Option<&'static str>,
    ) -> Result<Vec<KubeSecret>> {
        let api: Api<KubeSecret> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| self.map(e, "list", "secrets", "", namespace, role))
    }

    pub async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        api.get(name)
            .await
            .map(|c| c.data.unwrap_or_default())
            .map_err(|e| self.map(e, "get", "configmaps", name, namespace, None))
    }

    /// The organisation's DNS suffix (configmap `gpc-system/dnssuffix`, key `dnsSuffix`), checked
    /// with [`check_dns_name`]; `None` when the key is missing or empty.
    pub async fn dns_suffix(&self) -> Result<Option<String>> {
        let data = self
            .config_map(DNS_SUFFIX_NAMESPACE, DNS_SUFFIX_CONFIGMAP)
            .await?;
        match data.get(DNS_SUFFIX_KEY).map(|v| v.trim().trim_matches('.')) {
            None | Some("") => Ok(None),
            Some(v) => check_dns_name(v)
                .map(Some)
                .map_err(|reason| Error::BadDnsSuffix {
                    cluster: self.name.clone(),
                    value: v.to_string(),
                    reason,
                }),
        }
    }

    /// A custom resource, untyped (its CRD may be newer than anything we could model).
    pub async fn custom(
        &self,
        gvk: &GroupVersionKind,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Result<DynamicObject> {
        let resource = ApiResource::from_gvk_with_plural(gvk, plural);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        api.get(name)
            .await
            .map_err(|e| self.map(e, "get", plural, name, namespace, None))
    }
}

/// A data key of a secret as UTF-8 text, or why not.
pub fn secret_text(secret: &KubeSecret, key: &str) -> std::result::Result<String, String> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| format!("secret {name} has no key {key:?}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("secret {name} key {key:?} is not UTF-8 text"))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(format!("secret {name} key {key:?} is empty"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert_eq!(
            check_dns_name("org.example.test").unwrap(),
            "org.example.test"
        );
        assert_eq!(
            check_dns_name(" Org.Example.TEST. ").unwrap(),
            "org.example.test"
        );
        assert_eq!(check_dns_name("a-1.b2").unwrap(), "a-1.b2");
        let label63 = "a".repeat(63);
        assert!(check_dns_name(&format!("{label63}.test")).is_ok());
        let long = format!("{label63}.{label63}.{label63}.{}", "a".repeat(61));
        assert_eq!(long.len(), 253);
        assert!(check_dns_name(&long).is_ok());
        for bad in [
            "",
            "x@evil.test:443/",
            "evil.test/x",
            "evil.test:443",
            "a b.test",
            "a..b",
            "-a.test",
            "a-.test",
            "a_b.test",
            "ex\u{e4}mple.test",
            "a.te\nst",
            "a.test#",
            "a.test?x",
            "[::1]",
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_dns_name(&format!("{}.test", "a".repeat(64))).is_err());
        assert!(check_dns_name(&format!("{long}a")).is_err());
    }
}
