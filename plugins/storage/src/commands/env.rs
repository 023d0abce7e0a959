//! `gdcloud storage env`: the S3 settings as shell exports (or JSON) for other S3 tools; refuses to
//! print secrets to a terminal unless asked.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use gdcloud::ops::storage_config::{
    self, environment, fish_quote, powershell_quote, sh_quote, STALE_VARIABLES,
};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Output;

use super::source::ClusterArgs;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ShellKind {
    Sh,
    Fish,
    Powershell,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  eval \"$(gdcloud storage env)\"\n  gdcloud storage env --shell fish | source\n  gdcloud storage env --format json > s3.json"
)]
pub struct Args {
    /// The syntax of the exports.
    #[arg(long, value_enum, default_value = "sh")]
    shell: ShellKind,
    /// Print even when stdout is a terminal (the secret key becomes visible).
    #[arg(long)]
    show_secrets: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    if std::io::stdout().is_terminal() && !args.show_secrets {
        bail!("stdout is a terminal: the secret key would be shown; use `eval \"$(gdcloud storage env)\"`, `gdcloud storage exec -- CMD`, or --show-secrets");
    }
    let config = global.config()?;
    let settings = storage_config::settings(&config, &args.cluster.options())
        .await
        .context("env")?;
    let vars = environment(&settings);
    let map: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
        .collect();
    out.result(&map, || exports(out, args.shell, &vars))?;
    Ok(ExitCode::SUCCESS)
}

/// The exports in the syntax of `shell`.
fn exports(out: &Output, shell: ShellKind, vars: &[(&str, String)]) -> std::io::Result<()> {
    // Stale variables first, so the shell ends up with exactly the settings printed.
    for k in STALE_VARIABLES {
        let line = match shell {
            ShellKind::Sh => format!("unset {k}"),
            ShellKind::Fish => format!("set -e {k}"),
            ShellKind::Powershell => {
                format!("Remove-Item -ErrorAction SilentlyContinue Env:{k}")
            }
        };
        out.line(&line)?;
    }
    for (k, v) in vars {
        let line = match shell {
            ShellKind::Sh => format!("export {k}={}", sh_quote(v)),
            ShellKind::Fish => format!("set -gx {k} {}", fish_quote(v)),
            ShellKind::Powershell => format!("$env:{k} = {}", powershell_quote(v)),
        };
        out.line(&line)?;
    }
    Ok(())
}
