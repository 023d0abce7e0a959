//! `gdcloud-config`: the `gdcloud config` verbs for shell users (where the gdcloud CLI is installed,
//! its own `gdcloud config` wins). Argument parsing and rendering only; the work is done by
//! `gdcloud::ops::config`.

mod commands;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gdcloud::plugin::cli::{self, GlobalArgs};

const ABOUT: &str =
    "View and edit the properties gdcloud-kit reads, and manage named configurations.";

#[derive(Debug, Parser)]
#[command(
    name = "gdcloud-config",
    bin_name = "gdcloud-config",
    version,
    about = ABOUT,
    after_help = "Runs as `gdcloud config COMMAND` or directly as `gdcloud-config COMMAND`.\n\nExamples:\n  gdcloud-config set artifacts/registry harbor.example.com\n  gdcloud-config get storage/s3_endpoint\n  gdcloud-config list --all\n  gdcloud-config configurations create work --activate"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set a property in the active configuration (or --configuration NAME).
    Set(commands::properties::SetArgs),
    /// Print a property's value (exit 1 when it is not set).
    Get(commands::properties::GetArgs),
    /// Remove a property from the active configuration (or --configuration NAME).
    Unset(commands::properties::UnsetArgs),
    /// List the properties set in the active configuration (or --configuration NAME).
    List(commands::properties::ListArgs),
    /// Create, activate, list, describe and delete named configurations.
    #[command(subcommand)]
    Configurations(commands::configurations::Command),
    #[command(flatten)]
    Builtin(cli::Builtin),
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let out = cli.global.output();
    let global = &cli.global;
    match cli.command {
        Command::Set(args) => commands::properties::set(global, &out, args),
        Command::Get(args) => commands::properties::get(global, &out, args),
        Command::Unset(args) => commands::properties::unset(global, &out, args),
        Command::List(args) => commands::properties::list(global, &out, args),
        Command::Configurations(c) => commands::configurations::run(global, &out, c),
        Command::Builtin(builtin) => Ok(builtin.run::<Cli>(ABOUT, &cli.global)?),
    }
}

fn main() -> ExitCode {
    cli::main(run)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
