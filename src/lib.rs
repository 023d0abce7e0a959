//! Core of gdcloud-kit: everything the binaries share lives here once, so that the credential helper,
//! the plugins and the tests agree on configuration, credential storage and file handling.
//!
//! Features keep the credential helper lean: with none it has configuration, credential stores and
//! the token cache; `images` adds image files on disk (layouts, extraction), `net` the network
//! clients (registry, S3, Kubernetes, the OpenID provider) and the ops that use them, `cli` the
//! plugins' command-line plumbing.

pub(crate) mod atomic;
#[cfg(feature = "net")]
pub(crate) mod body;
// Shared by every build; the credential helper uses only part of it.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) mod bounded;
#[cfg(feature = "net")]
pub(crate) mod certs;
pub mod config;
pub mod credentials;
pub mod debug;
#[cfg(feature = "net")]
pub(crate) mod docker_config;
#[cfg(feature = "images")]
pub mod extract;
#[cfg(feature = "images")]
pub(crate) mod fs;
// Shared by every build; the credential helper uses only part of it.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) mod host;
#[cfg(feature = "net")]
pub mod http;
#[cfg(feature = "net")]
pub(crate) mod kube;
#[cfg(feature = "images")]
pub mod layout;
pub mod oci;
pub mod oidc;
pub mod ops;
pub mod plugin;
pub mod progress;
#[cfg(feature = "net")]
pub(crate) mod registry;
#[cfg(feature = "net")]
pub(crate) mod rfc3339;
#[cfg(feature = "net")]
pub mod s3;
pub mod secret;
#[cfg(feature = "net")]
pub mod sign;
#[cfg(feature = "images")]
pub(crate) mod tar_limit;
// Shared by every build; the credential helper uses only part of it.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) mod text;

/// The version every binary reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
