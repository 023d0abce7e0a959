//! `gdcloud storage cp [-r] [-n] [-c] SOURCE… DESTINATION`: flags → `ops::storage_cp::Options`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::storage_config;
use gdcloud::ops::storage_cp::{self, Options};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::progress;
use gdcloud::plugin::Escaped;
use gdcloud::plugin::Output;

use super::source::ClusterArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud storage cp s3://bucket/g/oracle_db.tar .\n  gdcloud storage cp -r s3://bucket/images/ ./images\n  gdcloud storage cp -n big.tar s3://bucket/uploads/\n\nDownloads resume when run again after an interruption; a file takes its name only when complete and checked."
)]
pub struct Args {
    /// What to copy: s3://BUCKET/KEY (or a prefix, with -r) or local paths.
    #[arg(required = true, num_args = 1.., value_name = "SOURCE")]
    sources: Vec<String>,
    /// Where to: s3://BUCKET/[PREFIX] or a local file or directory.
    #[arg(value_name = "DESTINATION")]
    destination: String,
    /// Copy prefixes and directories recursively, keeping relative paths.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Never overwrite an existing destination.
    #[arg(short = 'n', long = "no-clobber")]
    no_clobber: bool,
    /// Continue past failures; a summary is printed and the exit status is still non-zero.
    #[arg(short = 'c', long = "continue-on-error")]
    continue_on_error: bool,
    /// Parts transferred at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Largest part in MiB for ranged downloads and multipart uploads (files up to this size go up
    /// in one PUT); objects under concurrency × this size are split into smaller parts (8 MiB at
    /// least) to keep every stream busy.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=5120))]
    part_size_mib: u64,
    /// Skip TLS verification of the S3 endpoint.
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    let settings = storage_config::settings(&config, &args.cluster.options())
        .await
        .context("cp")?;
    let opts = Options {
        sources: args.sources.clone(),
        destination: args.destination.clone(),
        recursive: args.recursive,
        no_clobber: args.no_clobber,
        continue_on_error: args.continue_on_error,
        concurrency: args.concurrency.into(),
        part_size: args.part_size_mib << 20,
        settings,
        insecure: args.insecure,
        log_http: global.log_http,
    };
    let bars = progress::new(out.progress_enabled(), "cp");
    let report = storage_cp::run(&opts, &*bars).await.context("cp")?;
    out.resources(&report, "copied", || {
        for item in &report.copied {
            // Keys come from the server: control characters in them are made visible.
            out.line(&format!(
                "{} -> {}",
                Escaped(&item.source),
                Escaped(&item.destination)
            ))?;
        }
        Ok(())
    })?;
    if !report.skipped.is_empty() {
        out.status(&format!(
            "{} left alone (already there, -n)",
            report.skipped.len()
        ));
    }
    if !report.failed.is_empty() {
        eprintln!(
            "{} of {} copies failed:",
            report.failed.len(),
            report.failed.len() + report.copied.len() + report.skipped.len()
        );
        for f in &report.failed {
            eprintln!("  {}: {}", Escaped(&f.source), Escaped(&f.error));
        }
        return Ok(ExitCode::FAILURE);
    }
    out.status(&format!(
        "Copied {} ({} bytes)",
        report.copied.len(),
        report.bytes
    ));
    Ok(ExitCode::SUCCESS)
}
