//! The flags that name where S3 settings come from: the cluster (a bucket-key secret) or, without
//! `--secret`, the configuration written by `configure`.

use std::path::PathBuf;

use gdcloud::ops::storage_config::{self, Options};
use gdcloud::plugin::cli::KubeArgs;

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The bucket-key secret (default: the only object-storage-key-* secret of the namespace).
    #[arg(long, value_name = "NAME")]
    pub secret: Option<String>,
    /// The secret's namespace.
    #[arg(long, value_name = "NS", default_value = storage_config::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The S3 endpoint (default: https://objectstorage.<dnsSuffix> from the cluster).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// A CA (PEM) for the endpoint's TLS (`configure` saves it as storage/s3_custom_ca_certs_file).
    #[arg(long, value_name = "FILE")]
    pub ca_cert_path: Option<PathBuf>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

impl ClusterArgs {
    pub fn options(&self) -> Options {
        Options {
            secret: self.secret.clone(),
            namespace: Some(self.namespace.clone()),
            endpoint: self.endpoint.clone(),
            ca_cert_path: self.ca_cert_path.clone(),
            cluster: self.kube.options(),
        }
    }
}
