//! `gdcloud storage ls s3://BUCKET[/PREFIX]`: objects and prefixes, like `aws s3 ls`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::storage_config;
use gdcloud::ops::storage_ls;
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Escaped;
use gdcloud::plugin::Output;

use super::source::ClusterArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud storage ls s3://\n  gdcloud storage ls s3://bucket/g/\n  gdcloud storage ls -r s3://bucket --format json"
)]
pub struct Args {
    /// s3://BUCKET[/PREFIX], or s3:// for the buckets
    url: String,
    /// List every object below the prefix, not just one level.
    #[arg(short = 'r', long)]
    recursive: bool,
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
        .context("ls")?;
    let listed = storage_ls::ls(
        &settings,
        &args.url,
        args.recursive,
        args.insecure,
        global.log_http,
    )
    .await
    .with_context(|| format!("ls {}", args.url))?;
    if let Some(r) = &listed.learned_region {
        out.status(&super::cp::region_note(r));
    }
    let listed = listed.entries;
    out.result(&listed, || draw(out, &listed))?;
    Ok(ExitCode::SUCCESS)
}

/// `aws s3 ls`'s layout: buckets with their dates, `PRE` prefixes, objects with date and size.
fn draw(out: &Output, listed: &[storage_ls::Listed]) -> std::io::Result<()> {
    for l in listed {
        if l.bucket {
            out.line(&format!(
                "{:>20} {}",
                l.last_modified.as_deref().unwrap_or("-"),
                Escaped(&l.key)
            ))?;
        } else if l.prefix {
            out.line(&format!("{:>29} PRE {}", "", Escaped(&l.key)))?;
        } else {
            out.line(&format!(
                "{:>20} {:>12} {}",
                l.last_modified.as_deref().unwrap_or("-"),
                l.size.unwrap_or(0),
                Escaped(&l.key)
            ))?;
        }
    }
    Ok(())
}
