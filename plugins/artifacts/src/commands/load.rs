//! `gdcloud artifacts load BUNDLE [REGISTRY[/PREFIX]]`: flags → `ops::load::Options`; the report
//! as text (one line per entry) or `--format json`; exit status 1 when any entry failed or was
//! refused.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::discovery;
use gdcloud::ops::harbor_projects::{human, ProjectStatus};
use gdcloud::ops::load::{self, Options, Report, Status};
use gdcloud::plugin::cli::{self, GlobalArgs, KubeArgs, RegistryArgs};
use gdcloud::plugin::{progress, Output};

use super::verify::TrustArgs;

#[derive(Debug, clap::Args)]
#[command(
    group = clap::ArgGroup::new("trust").args(["key", "policy"]).requires("verify"),
    after_help = "Examples:\n  gdcloud artifacts load ./bundle                                  # into artifacts/registry\n  gdcloud artifacts load ./bundle harbor.example.com/mirror         # repositories under mirror/\n  gdcloud artifacts load ./bundle --dry-run                         # the plan: refs, blobs, bytes\n  gdcloud artifacts load ./bundle --ref 'project/app:*'             # one repository, its signatures\n  gdcloud artifacts load ./bundle --verify --key cosign.pub         # refuse unsigned images\n  gdcloud artifacts load ./bundle --create-projects --credentials-from-cluster   # Harbor\n\nEvery image and index keeps its digest; signature tags (sha256-<digest>.sig/.att/.sbom) and referrers go with their image. What the registry already has at the same digest is skipped: run it again after an interruption. Exit status 1 when any entry failed or was refused."
)]
pub struct Args {
    /// A bundle: an OCI layout with PROJECT/REPO:TAG ref names, or a directory of layouts.
    bundle: PathBuf,
    /// HOST[/PREFIX]: the registry (default: artifacts/registry or the cluster's), and a path
    /// put before every repository.
    destination: Option<String>,
    /// Entries, and blobs, sent at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Blobs larger than this many MiB upload in chunks of this size.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    chunk_size_mib: u64,
    /// Load only the images whose PROJECT/REPO:TAG matches (`*` matches anything; repeatable),
    /// with their signature tags and referrers.
    #[arg(long = "ref", value_name = "PATTERN")]
    refs: Vec<String>,
    /// Print the plan (entries, blobs to send, bytes) and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Go on with the other entries when one fails or is refused (the exit status is still 1).
    #[arg(long)]
    continue_on_error: bool,
    /// Check every image's cosign signatures in BUNDLE (with --key or --policy) before anything
    /// is sent; a refused image is not loaded.
    #[arg(long, requires = "trust")]
    verify: bool,
    #[command(flatten)]
    trust: TrustArgs,
    /// Harbor: create the projects the bundle needs that do not exist yet (private), through
    /// Harbor's API with its admin login, before anything is sent.
    #[arg(long)]
    create_projects: bool,
    /// Harbor: do not refuse the load when its new bytes would not fit a project's quota.
    #[arg(long)]
    skip_quota_check: bool,
    /// Harbor: read its admin login (for projects and quotas) from the cluster's harbor-admin
    /// secret instead of using the registry login.
    #[arg(long)]
    credentials_from_cluster: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The cluster that names the registry when neither REGISTRY nor artifacts/registry does.
    #[command(flatten)]
    cluster: KubeArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    if let Some(d) = &args.destination {
        cli::warn_plain_http(out, d);
    }
    let default_registry = match &args.destination {
        Some(_) => None,
        None => {
            let bundle = args.bundle.display().to_string();
            discovery::default_registry_for(&config, &bundle, &args.cluster.options()).await?
        }
    };
    let opts = Options {
        bundle: args.bundle.clone(),
        destination: args.destination.clone(),
        default_registry,
        concurrency: args.concurrency.into(),
        chunk_size: args.chunk_size_mib * 1024 * 1024,
        refs: args.refs.clone(),
        dry_run: args.dry_run,
        continue_on_error: args.continue_on_error,
        trust: if args.verify {
            args.trust.trust()
        } else {
            None
        },
        client: args.registry.client_options(global)?,
        create_projects: args.create_projects,
        skip_quota_check: args.skip_quota_check,
        harbor_admin: None,
        harbor_admin_from: args
            .credentials_from_cluster
            .then(|| args.cluster.options()),
    };
    let bars = progress::new(out.progress_enabled(), "load");
    let report = load::run(&opts, &*bars)
        .await
        .with_context(|| format!("load {}", args.bundle.display()))?;
    out.result(&report, || text(out, &report))?;
    if report.failures() > 0 {
        out.status(&format!(
            "{} of {} entries were not loaded",
            report.failures(),
            report.refs.len()
        ));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn text(out: &Output, report: &Report) -> std::io::Result<()> {
    for r in &report.refs {
        let status = r.status.as_str();
        let line = match &r.reason {
            Some(reason) => format!("{status:8} {} {} ({reason})", r.reference, r.digest),
            None => format!("{status:8} {} {}", r.reference, r.digest),
        };
        out.line(&line)?;
    }
    let failed = format!(
        "{} already there, {} refused, {} failed",
        report.count(Status::Skipped),
        report.count(Status::Refused),
        report.count(Status::Failed)
    );
    for p in report.harbor_projects.iter().flat_map(|h| &h.projects) {
        let state = match p.status {
            ProjectStatus::Exists => "exists",
            ProjectStatus::Created => "created (private)",
            ProjectStatus::CreatedByAnother => "created by another loader",
            ProjectStatus::ToCreate => "to be created (private)",
        };
        let room = match p.quota {
            Some(q) if q.hard < 0 => ", no quota".to_string(),
            Some(q) => format!(
                ", quota {} of which {} used",
                human(q.hard as u64),
                human(q.used.max(0) as u64)
            ),
            None => String::new(),
        };
        out.status(&format!("Harbor project {}: {state}{room}", p.name));
    }
    if report.dry_run {
        for p in &report.projects {
            out.status(&format!(
                "Project {}: {} new blobs, {} new bytes",
                p.project, p.new_blobs, p.new_bytes
            ));
        }
        out.status(&format!(
            "Would send {} blobs ({} bytes) to {}: {} entries to push, {failed}",
            report.blobs_to_send,
            report.bytes_to_send,
            report.registry,
            report.count(Status::Planned),
        ));
    } else {
        out.status(&format!(
            "Sent {} blobs ({} bytes) to {}, {} mounted, {} already there: {} entries pushed, {failed}",
            report.blobs_uploaded,
            report.bytes_uploaded,
            report.registry,
            report.blobs_mounted,
            report.blobs_skipped,
            report.count(Status::Pushed),
        ));
    }
    if let Some(log) = report.transparency_log {
        out.status(log);
    }
    Ok(())
}
