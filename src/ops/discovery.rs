//! Where the organisation's registry is and how to sign in to Harbor as admin, read from the
//! cluster the way the runbook does by hand: `.spec.externalURL` of the `HarborCluster` named
//! `harbor` in `harbor-system` (else `harbor.<dnsSuffix>`), and the admin password from secret
//! `harbor-admin` (key `secret`) — never printed.

use kube::core::GroupVersionKind;

use crate::config::Config;
use crate::kube::{self as k8s, Cluster};
use crate::registry::auth::Credentials;
use crate::secret::Secret;

pub const HARBOR_NAMESPACE: &str = "harbor-system";
/// The property naming the organisation's registry, for references without a host.
pub const REGISTRY_PROPERTY: &str = "artifacts/registry";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Kube(Box<k8s::Error>),
    #[error("cluster {0}: neither a HarborCluster with spec.externalURL nor a dnsSuffix names the registry; pass --registries HOST or set artifacts/registry")]
    NoRegistry(String),
    #[error("cluster {cluster}: {reason}")]
    Secret { cluster: String, reason: String },
    #[error("{reference} names no registry host and {REGISTRY_PROPERTY} is not set; the cluster's registry could not be found either: {source}")]
    NoDefaultRegistry {
        reference: String,
        source: Box<Error>,
    },
}

impl From<k8s::Error> for Error {
    fn from(e: k8s::Error) -> Self {
        Error::Kube(Box::new(e))
    }
}

/// The registry host (`host[:port]`) of the cluster.
pub async fn registry(cluster: &Cluster) -> Result<String, Error> {
    let gvk = GroupVersionKind::gvk("goharbor.io", "v1beta1", "HarborCluster");
    match cluster
        .custom(&gvk, "harborclusters", HARBOR_NAMESPACE, "harbor")
        .await
    {
        Ok(obj) => {
            if let Some(url) = obj
                .data
                .pointer("/spec/externalURL")
                .and_then(|v| v.as_str())
            {
                if let Ok(host) = crate::host::registry_host(url) {
                    crate::debug::log(format_args!(
                        "cluster {}: registry {host} from HarborCluster {HARBOR_NAMESPACE}/harbor",
                        cluster.name
                    ));
                    return Ok(host);
                }
            }
        }
        Err(k8s::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // A dnsSuffix that is not a DNS name is an error, never a host taken from it.
    match cluster.dns_suffix().await? {
        Some(suffix) => {
            crate::debug::log(format_args!(
                "cluster {}: no HarborCluster; registry harbor.{suffix} from the dnsSuffix",
                cluster.name
            ));
            Ok(format!("harbor.{suffix}"))
        }
        None => Err(Error::NoRegistry(cluster.name.clone())),
    }
}

/// Harbor's admin login from secret `harbor-admin`.
pub async fn harbor_admin(cluster: &Cluster) -> Result<Credentials, Error> {
    let secret = cluster
        .secret(HARBOR_NAMESPACE, "harbor-admin", None)
        .await?;
    let password = k8s::secret_text(&secret, "secret").map_err(|reason| Error::Secret {
        cluster: cluster.name.clone(),
        reason,
    })?;
    Ok(Credentials::Basic {
        username: "admin".into(),
        password: Secret::new(password),
    })
}

/// Harbor's admin login from the `harbor-admin` secret of the cluster `opts` names.
pub async fn harbor_admin_from(opts: &k8s::Options) -> Result<Credentials, Error> {
    harbor_admin(&k8s::connect(opts).await?).await
}

/// The registry for references and `configure-docker` when nothing is configured: the cluster's.
pub async fn registry_from(opts: &k8s::Options) -> Result<String, Error> {
    registry(&k8s::connect(opts).await?).await
}

/// The registry for `reference` when it names no host: `artifacts/registry`, else the cluster's.
/// `None` when the reference names its host and nothing is configured; the cluster is asked only
/// when needed.
pub async fn default_registry_for(
    config: &Config,
    reference: &str,
    cluster: &k8s::Options,
) -> Result<Option<String>, Error> {
    if let Some(r) = config.get(REGISTRY_PROPERTY) {
        crate::debug::log(format_args!("registry {r} from {REGISTRY_PROPERTY}"));
        return Ok(Some(r));
    }
    // A path (spelled as one, or existing) needs no registry: the op says what is wrong with it.
    if crate::host::names_host(reference)
        || crate::host::written_as_path(reference)
        || std::path::Path::new(reference.trim()).exists()
    {
        return Ok(None);
    }
    match registry_from(cluster).await {
        Ok(host) => Ok(Some(host)),
        Err(e) => Err(Error::NoDefaultRegistry {
            reference: reference.to_string(),
            source: Box::new(e),
        }),
    }
}
