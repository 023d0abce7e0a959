//! `set`, `get`, `unset` and `list`: gcloud's property verbs on the active configuration (or
//! `--configuration NAME`). Confirmations go to stderr, as gcloud's do; results to stdout.

use std::process::ExitCode;

use anyhow::{bail, Result};
use gdcloud::ops::config::{Change, Configurations, ListOptions};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(after_help = super::properties_help())]
pub struct SetArgs {
    /// SECTION/PROPERTY, e.g. artifacts/registry.
    pub property: String,
    /// The value (one line).
    pub value: String,
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
    let change = Configurations::open()?.set(
        global.configuration.as_deref(),
        &args.property,
        &args.value,
    )?;
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
