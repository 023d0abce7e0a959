//! `gdcloud artifacts save DIRECTORY [REF...]`: flags → `ops::save::Options`; one line per saved
//! image (`NAME DIGEST`), the summary on stderr, the whole report with `--format json`, and the
//! images as the rows of `value(…)`/`table(…)` projections.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use gdcloud::ops::discovery;
use gdcloud::ops::save::{self, Options};
use gdcloud::plugin::cli::{self, GlobalArgs, KubeArgs, RegistryArgs};
use gdcloud::plugin::progress;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud artifacts save bundle harbor.example.com/project/app:1.0 harbor.example.com/project/db:19c\n  gdcloud artifacts save --with-signatures --from-file images.txt bundle\n\nEach image is named PROJECT/REPO:TAG in the bundle (the registry host dropped), as `tree` lists it and `load` reads it. Indexes are kept whole. DIRECTORY must be empty or absent; an interrupted save resumes when run again into it."
)]
pub struct Args {
    /// An empty or absent directory for the bundle (one OCI image layout).
    directory: PathBuf,
    /// Images: [HOST/]PROJECT/REPO[:TAG|@DIGEST] (host from artifacts/registry when omitted).
    refs: Vec<String>,
    /// Read more references from FILE, one a line (blank lines and # comments skipped; - for stdin).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Also save each image's cosign tags (sha256-<digest>.sig, .att, .sbom) and OCI referrers.
    #[arg(long)]
    with_signatures: bool,
    /// Manifests and blobs fetched at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The cluster that names the registry for references without a host, when
    /// artifacts/registry is not set.
    #[command(flatten)]
    cluster: KubeArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let stdin_list = args.from_file.as_deref() == Some(std::path::Path::new("-"));
    if stdin_list && args.registry.password_stdin {
        bail!("--from-file - and --password-stdin both read stdin: put the references in a file");
    }
    let config = global.config()?;
    let client = args.registry.client_options(global)?;
    let mut refs = args.refs.clone();
    if let Some(file) = &args.from_file {
        refs.extend(save::read_ref_list(file)?);
    }
    for r in &refs {
        cli::warn_plain_http(out, r);
    }
    // One default registry serves every reference without a host; the cluster is asked only
    // when a reference needs it and artifacts/registry is not set.
    let mut default_registry = None;
    for r in &refs {
        default_registry =
            discovery::default_registry_for(&config, r, &args.cluster.options()).await?;
        if default_registry.is_some() {
            break;
        }
    }
    let opts = Options {
        destination: args.directory.clone(),
        refs,
        default_registry,
        with_signatures: args.with_signatures,
        concurrency: args.concurrency.into(),
        client,
    };
    let bars = progress::new(out.progress_enabled(), "save");
    let report = save::run(&opts, &*bars)
        .await
        .with_context(|| format!("save into {}", args.directory.display()))?;
    out.resources(&report, "images", || {
        for image in &report.images {
            out.line(&format!("{} {}", image.name, image.digest))?;
        }
        out.status(&format!(
            "Saved {} images into {} ({} blobs, {} bytes downloaded{})",
            report.images.len(),
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
