//! `gdcloud auth revoke`: revoke the refresh token at the provider (RFC 7009) and forget the session
//! and its cached tokens; offline, the local removal still happens, with a warning.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::revoke;
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(global: &GlobalArgs, out: &Output, _args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    let report = revoke::run(&config, global.log_http)
        .await
        .context("revoke")?;
    if let Some(w) = &report.warning {
        out.warn(w);
    }
    out.result(&report, || match &report.account {
        Some(a) => out.line(&format!("Revoked credentials for [{a}].")),
        None => Ok(()),
    })?;
    Ok(ExitCode::SUCCESS)
}
