//! Core of gdcloud-kit: everything the binaries share lives here once, so that the credential helper,
//! the plugins and the tests agree on configuration, credential storage and file handling.
//!
//! The credential helper's hot path (`credentials`, `config`, `atomic`) touches no async runtime, HTTP or
//! Kubernetes code; the command-line plumbing of the plugins sits behind the `cli` feature.

pub mod atomic;
pub mod body;
pub mod bounded;
pub mod certs;
pub mod config;
pub mod credentials;
pub mod docker_config;
pub mod extract;
pub(crate) mod fs;
pub mod http;
pub mod kube;
pub mod layout;
pub mod oci;
pub mod oidc;
pub mod ops;
pub mod plugin;
pub mod progress;
pub mod registry;
pub mod rfc3339;
pub mod s3;
pub mod secret;
pub mod tar_limit;
pub mod text;

/// The version every binary reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
