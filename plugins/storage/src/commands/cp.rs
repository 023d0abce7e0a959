//! `gdcloud storage cp [-r] [-n] [-c] SOURCE… DESTINATION`: flags → `ops::storage_cp::Options`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::storage_config;
use gdcloud::ops::storage_cp::{self, Options};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::progress::{self, BlobProgress, Progress};
use gdcloud::plugin::Escaped;
use gdcloud::plugin::Output;
use std::sync::Arc;

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
    let shown = Noticing {
        bars: &*bars,
        out,
        drawn: out.progress_enabled(),
    };
    let report = match storage_cp::run(&opts, &shown).await {
        Ok(r) => r,
        Err(e) if e.is_interrupted() => {
            // 130, as a shell reports a run ended by SIGINT; the message says how to resume.
            eprintln!("cp: {e}");
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(anyhow::Error::new(e).context("cp")),
    };
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
    for item in &report.copied {
        if let Some(r) = &item.resumed {
            out.status(&format!(
                "{}: resumed: {} of {} parts ({}) already there",
                Escaped(&item.destination),
                r.parts,
                r.of,
                size(r.bytes)
            ));
        }
    }
    if let Some(r) = &report.learned_region {
        out.status(&region_note(r));
    }
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

/// Notices go above the bars when bars are drawn, else to stderr as status lines.
struct Noticing<'a> {
    bars: &'a dyn Progress,
    out: &'a Output,
    drawn: bool,
}

impl Progress for Noticing<'_> {
    fn expect(&self, bytes: u64) {
        self.bars.expect(bytes);
    }
    fn blob(&self, name: &str, size: u64) -> Arc<dyn BlobProgress> {
        self.bars.blob(name, size)
    }
    fn finish(&self) {
        self.bars.finish();
    }
    fn notice(&self, line: &str) {
        if self.drawn {
            self.bars.notice(line);
        } else {
            self.out.status(line);
        }
    }
}

/// `n` bytes for people: whole MiB from 1 MiB on.
fn size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// The status line that says which region the requests were signed for, when the endpoint named
/// another than the configured one.
pub fn region_note(region: &str) -> String {
    format!(
        "Signed for region {} (the endpoint asked for it); `gdcloud config set storage/s3_region {}` saves the extra request",
        Escaped(region),
        Escaped(region)
    )
}
