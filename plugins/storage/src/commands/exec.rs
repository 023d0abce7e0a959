//! `gdcloud storage exec -- CMD ARGS…`: runs CMD with the S3 settings in its environment — nothing
//! on disk, nothing in argv — and exits with its status.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::storage_config::{self, environment, STALE_VARIABLES};
use gdcloud::plugin::cli::GlobalArgs;

use super::source::ClusterArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud storage exec -- aws s3 ls s3://bucket\n  gdcloud storage exec --secret object-storage-key-std-user-1 -- rclone lsd :s3:"
)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    let settings = storage_config::settings(&config, &args.cluster.options())
        .await
        .context("exec")?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = std::process::Command::new(program);
    for k in STALE_VARIABLES {
        command.env_remove(k);
    }
    let status = command
        .args(rest)
        .envs(environment(&settings))
        .status()
        .with_context(|| format!("exec: cannot run {program}"))?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(128u8.saturating_add(u8::try_from(sig).unwrap_or(0))),
        _ => ExitCode::FAILURE,
    })
}
