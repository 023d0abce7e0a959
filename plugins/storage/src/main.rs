//! `gdcloud-storage`: the `gdcloud storage` plugin. Argument parsing and rendering only; the work
//! is done by `gdcloud::ops::storage_config`.

mod commands;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gdcloud::plugin::cli::{self, GlobalArgs};

const ABOUT: &str = "Configure S3 access from the cluster's bucket keys and hand it to S3 tools, without showing a secret.";

#[derive(Debug, Parser)]
#[command(
    name = "gdcloud-storage",
    bin_name = "gdcloud-storage",
    version,
    about = ABOUT,
    after_help = "Runs as `gdcloud storage COMMAND` or directly as `gdcloud-storage COMMAND`.\n\nExamples:\n  gdcloud storage configure --kubeconfig org-admin.kubeconfig\n  gdcloud storage exec -- aws s3 ls s3://bucket"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the bucket key and endpoint from the cluster into the gdcloud configuration.
    Configure(commands::configure::Args),
    /// Copy objects between S3 and local files (parallel, resumable, verified).
    Cp(commands::cp::Args),
    /// List objects and prefixes.
    Ls(commands::ls::Args),
    /// Print the S3 settings as environment variables for other S3 tools.
    Env(commands::env::Args),
    /// Run a command with the S3 settings in its environment.
    Exec(commands::exec::Args),
    #[command(flatten)]
    Builtin(cli::Builtin),
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let out = cli.global.output();
    match cli.command {
        Command::Configure(args) => {
            cli::runtime()?.block_on(commands::configure::run(&cli.global, &out, args))
        }
        Command::Cp(args) => cli::runtime()?.block_on(commands::cp::run(&cli.global, &out, args)),
        Command::Ls(args) => cli::runtime()?.block_on(commands::ls::run(&cli.global, &out, args)),
        Command::Env(args) => cli::runtime()?.block_on(commands::env::run(&cli.global, &out, args)),
        Command::Exec(args) => cli::runtime()?.block_on(commands::exec::run(&cli.global, args)),
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
