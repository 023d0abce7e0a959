//! `gdcloud-artifacts`: the `gdcloud artifacts` plugin. Moves images and bundles between OCI
//! registries (Harbor), local OCI layouts and tarballs without a Docker daemon. Argument parsing and
//! rendering only; the work is done by `gdcloud::ops`.

mod commands;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gdcloud::plugin::cli::{self, GlobalArgs};

const ABOUT: &str =
    "Pull, push, inspect and extract container images and OCI artifacts, daemonless.";

#[derive(Debug, Parser)]
#[command(
    name = "gdcloud-artifacts",
    bin_name = "gdcloud-artifacts",
    version,
    about = ABOUT,
    after_help = "Runs as `gdcloud artifacts COMMAND` or directly as `gdcloud-artifacts COMMAND`.\n\nExamples:\n  gdcloud artifacts pull harbor.example.com/project/app:1.0 app-1.0\n  gdcloud artifacts push oracle_db.tar harbor.example.com/project/oracle_db:19c\n  gdcloud artifacts tree ./bundle\n  gdcloud artifacts list-versions harbor.example.com/project/app --latest"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pull an image (or a whole index) into an OCI image layout directory.
    Pull(commands::pull::Args),
    /// Push an OCI layout, docker-archive or oci-archive to a registry.
    Push(commands::push::Args),
    /// Save many registry images (and their signatures) into one OCI layout bundle.
    Save(commands::save::Args),
    /// Load a whole bundle (many images, their signatures) into a registry, digests unchanged.
    Load(commands::load::Args),
    /// Extract an image's root filesystem, an artifact's files, or a docker-archive for docker load.
    Extract(commands::extract::Args),
    /// Show what a bundle directory or a registry reference holds.
    Tree(commands::tree::Args),
    /// List a repository's tags, newest first (Harbor push time, else image creation time).
    ListVersions(commands::list_versions::Args),
    /// Check an image's cosign signatures offline against a public key or a policy.json.
    Verify(commands::verify::Args),
    #[command(flatten)]
    Builtin(cli::Builtin),
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let out = cli.global.output();
    match cli.command {
        Command::Pull(args) => {
            cli::runtime()?.block_on(commands::pull::run(&cli.global, &out, args))
        }
        Command::Push(args) => {
            cli::runtime()?.block_on(commands::push::run(&cli.global, &out, args))
        }
        Command::Save(args) => {
            cli::runtime()?.block_on(commands::save::run(&cli.global, &out, args))
        }
        Command::Load(args) => {
            cli::runtime()?.block_on(commands::load::run(&cli.global, &out, args))
        }
        Command::Extract(args) => commands::extract::run(&cli.global, &out, args),
        Command::Tree(args) => {
            cli::runtime()?.block_on(commands::tree::run(&cli.global, &out, args))
        }
        Command::ListVersions(args) => {
            cli::runtime()?.block_on(commands::list_versions::run(&cli.global, &out, args))
        }
        Command::Verify(args) => {
            cli::runtime()?.block_on(commands::verify::run(&cli.global, &out, args))
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
