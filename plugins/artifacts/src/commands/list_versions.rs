//! `gdcloud artifacts list-versions REPOSITORY`: flags → `ops::list_versions::Options`; tags one per
//! line (with `--latest`, just the newest), or the listing in any `--format`, whose rows are the
//! versions (`--format 'value(tag)'`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::discovery;
use gdcloud::ops::list_versions::{self, Api, Options};
use gdcloud::plugin::cli::{self, GlobalArgs, KubeArgs, RegistryArgs};
use gdcloud::plugin::Output;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ApiArg {
    Auto,
    Harbor,
    Registry,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud artifacts list-versions harbor.example.com/project/app\n  gdcloud artifacts list-versions project/app --latest            # host from artifacts/registry\n  gdcloud artifacts list-versions harbor.example.com/project/app --format json"
)]
pub struct Args {
    /// The repository: [HOST/]PROJECT/REPO.
    repository: String,
    /// Print only the newest tag.
    #[arg(long)]
    latest: bool,
    /// Include cosign signature, attestation and SBOM tags (sha256-….sig/.att/.sbom).
    #[arg(long)]
    include_signatures: bool,
    /// Where the order comes from: Harbor's API (push time) or the registry's tag list (image creation time).
    #[arg(long, value_enum, default_value = "auto")]
    api: ApiArg,
    /// Read Harbor's admin login from the cluster (secret harbor-admin in harbor-system), never
    /// printing it: the runbook's method 2 without the curl.
    #[arg(long)]
    credentials_from_cluster: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The cluster that names the registry for references without a host, when
    /// artifacts/registry is not set.
    #[command(flatten)]
    cluster: KubeArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    cli::warn_plain_http(out, &args.repository);
    let opts = Options {
        repository: args.repository.clone(),
        default_registry: discovery::default_registry_for(
            &config,
            &args.repository,
            &args.cluster.options(),
        )
        .await?,
        include_signatures: args.include_signatures,
        api: match args.api {
            ApiArg::Auto => Api::Auto,
            ApiArg::Harbor => Api::Harbor,
            ApiArg::Registry => Api::Registry,
        },
        client: args.registry.client_options(global)?,
        harbor_admin_from: args
            .credentials_from_cluster
            .then(|| args.cluster.options()),
    };
    let mut listing = list_versions::run(&opts)
        .await
        .with_context(|| format!("list-versions {}", args.repository))?;
    if args.latest {
        let tied = list_versions::tied_for_latest(&listing);
        if !tied.is_empty() {
            out.warn(&format!(
                "tags {} share the newest time (one image under several tags); printing {}: a version wins over latest and other names",
                tied.join(", "),
                tied[0]
            ));
        }
        listing.versions.truncate(1);
    }
    out.resources(&listing, "versions", || {
        if args.latest {
            return out.line(&listing.versions[0].tag);
        }
        for v in &listing.versions {
            out.line(&format!(
                "{}\t{}\t{}",
                v.tag,
                v.time.as_deref().unwrap_or("-"),
                v.digest
            ))?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
