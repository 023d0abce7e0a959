//! `gdcloud auth configure-docker`: flags → `ops::configure_docker::Options`, report → text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::configure_docker::{self, Change, Options, Report};
use gdcloud::plugin::cli::{GlobalArgs, KubeArgs};
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud auth configure-docker --registries harbor.example.com\n  gdcloud auth configure-docker --registries a.example.com,b.example.com:8443 --containers\n  gdcloud auth configure-docker --config-cert --ca-cert-path org-ca.pem --dry-run"
)]
pub struct Args {
    /// Registries to configure, comma-separated (default: the property artifacts/registry).
    #[arg(long, value_delimiter = ',', value_name = "HOST[,HOST…]")]
    registries: Vec<String>,
    /// Replace credHelpers entries that point to another helper.
    #[arg(long)]
    overwrite: bool,
    /// Print the changes without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Remove stored logins (auths) for these registries that would bypass the helper.
    #[arg(long)]
    remove_stale_auths: bool,
    /// Also configure the containers auth file read by podman, buildah and skopeo.
    #[arg(long)]
    containers: bool,
    /// Install the registry CA (from --ca-cert-path) where Docker and the containers tools look.
    #[arg(long)]
    config_cert: bool,
    /// The registry's CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    ca_cert_path: Option<PathBuf>,
    /// The token audience these registries accept: the helper then answers with a token from
    /// `gdcloud auth login` (sign in with this audience).
    #[arg(long, value_name = "AUD")]
    audience: Option<String>,
    /// The cluster that names the registry when neither --registries nor artifacts/registry does.
    #[command(flatten)]
    cluster: KubeArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let mut config = global.config()?;
    let opts = Options {
        registries: args.registries,
        overwrite: args.overwrite,
        dry_run: args.dry_run,
        remove_stale_auths: args.remove_stale_auths,
        containers: args.containers,
        config_cert: args.config_cert,
        ca_cert_path: args.ca_cert_path,
        audience: args.audience,
        cluster: args.cluster.options(),
    };
    let report = configure_docker::run(&mut config, &opts)
        .await
        .context("configure-docker")?;
    if let Some(host) = &report.discovered {
        out.status(&format!("Using the cluster's registry {host}"));
    }
    if let Some(recorded) = &report.recorded {
        out.status(&recorded.to_string());
    }
    for w in &report.warnings {
        out.warn(&w.to_string());
    }
    out.result(&report, || render(out, &report))?;
    Ok(ExitCode::SUCCESS)
}

/// The report as lines: one per change (or "already configured"), then the audience and the CAs.
fn render(out: &Output, report: &Report) -> std::io::Result<()> {
    let verb = if report.dry_run {
        "would use"
    } else {
        "now uses"
    };
    for file in &report.files {
        if file.changes.is_empty() {
            out.line(&format!(
                "{}: already configured for {}",
                file.path.display(),
                report.registries.join(", ")
            ))?;
            continue;
        }
        for change in &file.changes {
            let line = match change {
                Change::AddHelper { host } => format!(
                    "{}: {host} {verb} docker-credential-gdcloud (credHelpers[{host:?}] = \"gdcloud\")",
                    file.path.display()
                ),
                Change::ReplaceHelper { host, previous } => format!(
                    "{}: {host} {verb} docker-credential-gdcloud instead of docker-credential-{previous}",
                    file.path.display()
                ),
                Change::RemoveAuth { key, .. } => format!(
                    "{}: {} the stored login auths[{key:?}]",
                    file.path.display(),
                    if report.dry_run { "would remove" } else { "removed" }
                ),
            };
            out.line(&line)?;
        }
        if let Some(b) = &file.backup {
            out.status(&format!("Backup of the previous file: {}", b.display()));
        }
    }
    if let Some(aud) = &report.audience {
        out.line(&format!(
            "{} {} tokens for audience {aud} from `gdcloud auth login`",
            report.registries.join(", "),
            if report.dry_run { "would get" } else { "get" }
        ))?;
    }
    for c in &report.certificates {
        out.line(&format!(
            "{}CA certificate {}",
            if report.dry_run {
                "would install "
            } else {
                "installed "
            },
            c.display()
        ))?;
    }
    Ok(())
}
