//! One module per user operation: the API the plugins call. An op takes options and returns data;
//! the plugin decides how to render it (text or JSON).

pub mod config;
#[cfg(feature = "net")]
pub mod configure_docker;
#[cfg(feature = "net")]
pub mod discovery;
#[cfg(feature = "images")]
pub mod extract;
#[cfg(feature = "net")]
pub mod harbor_projects;
#[cfg(feature = "net")]
pub mod identity_token;
#[cfg(feature = "net")]
pub mod list_versions;
#[cfg(feature = "net")]
pub mod load;
#[cfg(feature = "net")]
pub mod login;
#[cfg(feature = "net")]
pub mod pull;
#[cfg(feature = "net")]
pub mod push;
#[cfg(feature = "net")]
pub mod revoke;
#[cfg(feature = "net")]
pub mod save;
#[cfg(feature = "net")]
pub mod storage_config;
#[cfg(feature = "net")]
pub mod storage_cp;
#[cfg(feature = "net")]
pub mod storage_ls;
#[cfg(feature = "net")]
pub mod tree;
#[cfg(feature = "net")]
pub mod verify;

/// The configuration every op reads (and some write): gdcloud's properties.
pub use crate::config::Config;
/// Which cluster to ask (kubeconfig, context): `plugin::cli::KubeArgs` fills it.
#[cfg(feature = "net")]
pub use crate::kube::Options as ClusterOptions;
/// An image platform (`--platform OS/ARCH[/VARIANT]`).
pub use crate::oci::Platform;
/// How to reach a registry (TLS, login, debug logging): `plugin::cli::RegistryArgs` fills it.
#[cfg(feature = "net")]
pub use crate::registry::{auth::Credentials, ClientOptions};

use std::path::{Path, PathBuf};

/// Splits a SOURCE argument into a path and an image name: `--image-name` when given, else the
/// `PATH:NAME` form (as skopeo's `oci:DIR:REF`), recognised only when `PATH:NAME` itself is not an
/// existing path.
pub fn split_source_name(source: &Path, flag: Option<&str>) -> (PathBuf, Option<String>) {
    if let Some(name) = flag {
        return (source.to_path_buf(), Some(name.to_string()));
    }
    if source.exists() {
        return (source.to_path_buf(), None);
    }
    let s = source.to_string_lossy();
    if let Some((p, name)) = s.rsplit_once(':') {
        if Path::new(p).exists() && !name.is_empty() && !name.contains('/') {
            return (PathBuf::from(p), Some(name.to_string()));
        }
    }
    (source.to_path_buf(), None)
}
