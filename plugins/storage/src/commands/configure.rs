//! `gdcloud storage configure`: the bucket key from its secret into the configuration, never shown.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::storage_config;
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Output;

use super::source::ClusterArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud storage configure\n  gdcloud storage configure --secret object-storage-key-std-user-1 --kubeconfig org.kubeconfig\n  gdcloud storage configure --configuration dev --endpoint https://objectstorage.example.test --ca-cert-path org-ca.pem\n\nWrites storage/s3_access_key_id, storage/s3_secret_access_key and storage/s3_endpoint (0600)."
)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let mut config = global.config()?;
    let report = storage_config::configure(&mut config, &args.cluster.options())
        .await
        .context("configure")?;
    for recorded in &report.recorded {
        out.status(&recorded.to_string());
    }
    out.result(&report, || {
        out.line(&format!(
            "Configured S3 access in configuration [{}] from secret {}/{}: access key {}, endpoint {}{}",
            report.configuration,
            report.namespace,
            report.secret,
            report.access_key_id,
            report.endpoint,
            report.ca_file.as_ref().map(|c| format!(", CA {}", c.display())).unwrap_or_default()
        ))
    })?;
    Ok(ExitCode::SUCCESS)
}
