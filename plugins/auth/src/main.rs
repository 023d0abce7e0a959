//! `gdcloud-auth`: the `gdcloud auth` plugin. Argument parsing and rendering only; the work is done
//! by `gdcloud::ops`.

mod commands;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gdcloud::plugin::cli::{self, GlobalArgs};

const ABOUT: &str =
    "Manage how Docker, podman, buildah and skopeo authenticate to the organisation's registries.";

#[derive(Debug, Parser)]
#[command(
    name = "gdcloud-auth",
    bin_name = "gdcloud-auth",
    version,
    about = ABOUT,
    after_help = "Runs as `gdcloud auth COMMAND` or directly as `gdcloud-auth COMMAND`.\n\nExamples:\n  gdcloud auth configure-docker --registries harbor.example.com\n  gdcloud auth configure-docker --registries harbor.example.com --containers --config-cert --ca-cert-path org-ca.pem"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register docker-credential-gdcloud for registries in Docker's (and podman's) configuration.
    ConfigureDocker(commands::configure_docker::Args),
    /// Sign in with the organisation's identity provider (OpenID Connect).
    Login(commands::login::Args),
    /// Print a token for an audience (or the ID token) from the sign-in.
    PrintIdentityToken(commands::print_identity_token::Args),
    /// Revoke the sign-in at the provider and forget it here.
    Revoke(commands::revoke::Args),
    #[command(flatten)]
    Builtin(cli::Builtin),
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let out = cli.global.output();
    match cli.command {
        Command::ConfigureDocker(args) => {
            cli::runtime()?.block_on(commands::configure_docker::run(&cli.global, &out, args))
        }
        Command::Login(args) => {
            cli::runtime()?.block_on(commands::login::run(&cli.global, &out, args))
        }
        Command::PrintIdentityToken(args) => {
            cli::runtime()?.block_on(commands::print_identity_token::run(&cli.global, &out, args))
        }
        Command::Revoke(args) => {
            cli::runtime()?.block_on(commands::revoke::run(&cli.global, &out, args))
        }
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
