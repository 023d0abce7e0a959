//! `set`, `get`, `unset` and `list`: gcloud's property verbs on the active configuration (or
//! `--configuration NAME`). Confirmations go to stderr, as gcloud's do; results to stdout.

use std::process::ExitCode;

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use gdcloud::ops::config::{self, Change, Configurations, ListOptions};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(after_help = super::properties_help())]
pub struct SetArgs {
    /// SECTION/PROPERTY, e.g. artifacts/registry.
    pub property: String,
    /// The value (one line). Omitted or `-`: read from stdin, the way to give a secret
    /// (storage/s3_secret_access_key), which on the command line other users could see.
    pub value: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = super::properties_help())]
pub struct GetArgs {
    /// SECTION/PROPERTY, e.g. storage/s3_endpoint.
    pub property: String,
}

#[derive(Debug, clap::Args)]
pub struct UnsetArgs {
    /// SECTION/PROPERTY, e.g. artifacts/registry.
    pub property: String,
}

#[derive(Debug, clap::Args)]
#[command(after_help = super::properties_help())]
pub struct ListArgs {
    /// Also list the known properties that are not set.
    #[arg(long)]
    pub all: bool,
    /// Show secrets (storage/s3_secret_access_key) instead of masking them.
    #[arg(long)]
    pub show_secrets: bool,
}

pub fn set(global: &GlobalArgs, out: &Output, args: SetArgs) -> Result<ExitCode> {
    let value = match args.value.as_deref() {
        None | Some("-") => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                out.status(&format!(
                    "Enter the value of {} and press Ctrl-D:",
                    args.property
                ));
            }
            config::read_value(stdin.lock())
                .with_context(|| format!("read the value of {} from stdin", args.property))?
        }
        Some(v) => {
            if config::is_secret(&args.property) {
                out.warn(&format!(
                    "{} was given on the command line, where other users (ps) and the shell history see it; pipe it in instead: `printf %s \"$KEY\" | gdcloud config set {} -`",
                    args.property, args.property
                ));
            }
            v.to_string()
        }
    };
    let change =
        Configurations::open()?.set(global.configuration.as_deref(), &args.property, &value)?;
    out.status(&format!("Updated property [{}].", change.property));
    warn_overridden(out, &change);
    Ok(ExitCode::SUCCESS)
}

pub fn unset(global: &GlobalArgs, out: &Output, args: UnsetArgs) -> Result<ExitCode> {
    let change = Configurations::open()?.unset(global.configuration.as_deref(), &args.property)?;
    out.status(&format!("Unset property [{}].", change.property));
    warn_overridden(out, &change);
    Ok(ExitCode::SUCCESS)
}

/// The value as it is (the scripting verb: `X=$(gdcloud-config get …)`), or exit 1.
pub fn get(global: &GlobalArgs, out: &Output, args: GetArgs) -> Result<ExitCode> {
    let v = Configurations::open()?.get(global.configuration.as_deref(), &args.property)?;
    let Some(value) = &v.value else {
        bail!(
            "{} is not set in configuration {}: set it with `gdcloud-config set {} VALUE`",
            v.property,
            v.configuration,
            v.property
        );
    };
    if let Some(var) = &v.from_env {
        out.debug(&format!("{} comes from {var}", v.property));
    }
    out.result(value, || out.line(value))?;
    Ok(ExitCode::SUCCESS)
}

pub fn list(global: &GlobalArgs, out: &Output, args: ListArgs) -> Result<ExitCode> {
    let opts = ListOptions {
        all: args.all,
        show_secrets: args.show_secrets,
    };
    let listing = Configurations::open()?.list(global.configuration.as_deref(), opts)?;
    out.result(&listing.properties, || {
        let text = super::render_sections(&listing.properties);
        if !text.is_empty() {
            out.line(text.trim_end())?;
        }
        out.status(&format!(
            "\nYour active configuration is: [{}]",
            listing.name
        ));
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn warn_overridden(out: &Output, change: &Change) {
    if let Some(var) = &change.overridden_by {
        out.warn(&format!(
            "{var} is set in this environment and overrides {} here; unset it to use the configuration's value",
            change.property
        ));
    }
}
