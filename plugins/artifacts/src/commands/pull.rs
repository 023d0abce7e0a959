//! `gdcloud artifacts pull SOURCE DESTINATION`: flags → `ops::pull::Options`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::discovery;
use gdcloud::ops::pull::{self, Options};
use gdcloud::plugin::cli::{self, parse_platform, GlobalArgs, KubeArgs, RegistryArgs};
use gdcloud::plugin::progress;
use gdcloud::plugin::Output;

use super::verify::TrustArgs;

#[derive(Debug, clap::Args)]
#[command(
    group = clap::ArgGroup::new("trust").args(["key", "policy"]).requires("verify"),
    after_help = "Examples:\n  gdcloud artifacts pull harbor.example.com/project/app:1.0 app-1.0\n  gdcloud artifacts pull --single-manifest-repo --platform linux/amd64 project/app:1.0 app-1.0\n\nDESTINATION must be empty or absent; an interrupted pull resumes when run again with the same arguments."
)]
pub struct Args {
    /// The image: [HOST/]PROJECT/REPO[:TAG|@DIGEST] (host from artifacts/registry when omitted).
    source: String,
    /// An empty or absent directory for the OCI image layout.
    destination: PathBuf,
    /// SOURCE names one image manifest: pull only that image (with --platform, pick it from an index).
    #[arg(long)]
    single_manifest_repo: bool,
    /// Pick this image from an index: OS/ARCH[/VARIANT], e.g. linux/amd64.
    #[arg(long, value_parser = parse_platform)]
    platform: Option<gdcloud::ops::Platform>,
    /// Blobs downloaded at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Check the image's cosign signatures (with --key or --policy) before anything is written.
    #[arg(long, requires = "trust")]
    verify: bool,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The cluster that names the registry for references without a host, when
    /// artifacts/registry is not set.
    #[command(flatten)]
    cluster: KubeArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    cli::warn_plain_http(out, &args.source);
    let opts = Options {
        source: args.source.clone(),
        destination: args.destination.clone(),
        default_registry: discovery::default_registry_for(
            &config,
            &args.source,
            &args.cluster.options(),
        )
        .await?,
        single_manifest_repo: args.single_manifest_repo,
        platform: args.platform.clone(),
        concurrency: args.concurrency.into(),
        client: args.registry.client_options(global)?,
        verify: if args.verify {
            args.trust.trust()
        } else {
            None
        },
    };
    let bars = progress::new(out.progress_enabled(), "pull");
    let report = pull::run(&opts, &*bars)
        .await
        .with_context(|| format!("pull {} {}", args.source, args.destination.display()))?;
    out.result(&report, || {
        for v in &report.verified {
            out.status(&format!("Verified {}@{}: {}", v.image, v.digest, v.reason));
        }
        out.line(&format!("{} {}", report.reference, report.digest))?;
        out.status(&format!(
            "Pulled {} into {} ({} blobs, {} bytes downloaded{})",
            report.reference,
            report.destination.display(),
            report.blobs,
            report.bytes_downloaded,
            if report.blobs_present > 0 {
                format!(", {} already present", report.blobs_present)
            } else {
                String::new()
            }
        ));
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
