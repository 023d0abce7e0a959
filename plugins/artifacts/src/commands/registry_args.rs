//! Flags every command that talks to a registry shares, and how they become client options.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use gdcloud::config::Config;
use gdcloud::http::TlsOptions;
use gdcloud::plugin::cli::{GlobalArgs, VerbosityArg};
use gdcloud::registry::auth::Credentials;
use gdcloud::registry::ClientOptions;
use gdcloud::secret::Secret;

/// The property naming the organisation's registry, used for references without a host.
pub const REGISTRY_PROPERTY: &str = "artifacts/registry";

#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Skip TLS verification and allow plain HTTP (use only for testing).
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA (PEM) for the registry, besides the system roots and certs.d.
    #[arg(long, value_name = "FILE")]
    pub ca_cert_path: Option<PathBuf>,
    /// Log in as USER (the password is read from stdin with --password-stdin).
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password for --username from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    pub fn client_options(&self, global: &GlobalArgs) -> Result<ClientOptions> {
        let credentials = match &self.username {
            Some(user) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("read the password from stdin")?;
                let password = password.trim_end_matches(['\n', '\r']).to_string();
                if password.is_empty() {
                    bail!("--password-stdin read an empty password; pipe the password in, e.g. `echo \"$PW\" | gdcloud artifacts … --password-stdin`");
                }
                Some(Credentials::Basic {
                    username: user.clone(),
                    password: Secret::new(password),
                })
            }
            None => None,
        };
        Ok(ClientOptions {
            tls: TlsOptions {
                insecure: self.insecure,
                ca_files: self.ca_cert_path.iter().cloned().collect(),
                log_http: global.log_http,
            },
            credentials,
            debug: global.verbosity == VerbosityArg::Debug,
        })
    }
}

/// The configured default registry, for references without a host.
pub fn default_registry(config: &Config) -> Option<String> {
    config.get(REGISTRY_PROPERTY)
}

/// Where the cluster is, for the registry (and Harbor admin) lookups.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig used to find the cluster's registry for references without a host, when
    /// artifacts/registry is not set (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ClusterArgs {
    pub fn options(&self) -> gdcloud::kube::Options {
        gdcloud::kube::Options {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

/// Whether `reference` starts with a registry host (`host.domain/…`, `host:port/…`, `localhost/…`).
fn names_a_host(reference: &str) -> bool {
    let r = reference.strip_prefix("docker://").unwrap_or(reference);
    match r.split_once('/') {
        Some((first, _)) => {
            first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.starts_with('[')
        }
        None => false,
    }
}

/// The registry for a reference without a host: `artifacts/registry`, else the cluster's (the
/// HarborCluster's externalURL, else harbor.<dnsSuffix>). Only asks the cluster when needed.
pub async fn default_registry_for(
    config: &Config,
    reference: &str,
    cluster: &ClusterArgs,
) -> Result<Option<String>> {
    if let Some(r) = default_registry(config) {
        return Ok(Some(r));
    }
    if names_a_host(reference) {
        return Ok(None);
    }
    let host = gdcloud::ops::discovery::registry_from(&cluster.options())
        .await
        .with_context(|| format!("{reference} names no registry host and artifacts/registry is not set; the cluster's registry could not be found either"))?;
    Ok(Some(host))
}

/// `--platform OS/ARCH[/VARIANT]`.
pub fn parse_platform(s: &str) -> std::result::Result<gdcloud::oci::Platform, String> {
    gdcloud::oci::Platform::parse(s)
        .ok_or_else(|| format!("{s:?} is not OS/ARCH[/VARIANT], e.g. linux/amd64"))
}
