//! `gdcloud auth print-identity-token [--audiences AUD]`: a token for the audience (or the ID token)
//! on stdout, from the cache while it has more than a safety margin left, refreshed otherwise.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::identity_token::{self, Freshness, Options, DEFAULT_MARGIN};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud auth print-identity-token\n  gdcloud auth print-identity-token --audiences https://harbor.example.com"
)]
pub struct Args {
    /// The audience (RFC 8707 resource) of the token; without it, the ID token.
    #[arg(long, value_name = "AUD")]
    audiences: Option<String>,
    /// Refresh once the cached token is past half its life (what the credential helper asks for).
    #[arg(long, hide = true)]
    refresh_stale: bool,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    let opts = Options {
        audience: args.audiences,
        freshness: if args.refresh_stale {
            Freshness::HalfLife
        } else {
            Freshness::Margin(DEFAULT_MARGIN)
        },
        log_http: global.log_http,
    };
    let token = identity_token::run(&config, &opts)
        .await
        .context("print-identity-token")?;
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        token: &'a str,
        account: &'a str,
        expires_at: u64,
    }
    let shown = Shown {
        token: token.token.expose(),
        account: &token.account,
        expires_at: token.expires_at,
    };
    out.result(&shown, || out.line(shown.token))?;
    Ok(ExitCode::SUCCESS)
}
