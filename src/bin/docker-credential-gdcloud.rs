//! `docker-credential-gdcloud`: the credential helper Docker, podman, skopeo, buildah, oras and
//! containerd run for registries configured with `credHelpers: {HOST: "gdcloud"}`.
//!
//! Kept deliberately small: no argument parser, no async runtime, no anyhow (with `RUST_BACKTRACE=1`
//! an anyhow error captures a backtrace, ~80 ms). Errors go to stdout as one line with exit 1, which
//! is what the protocol's clients read.

use std::io::{self, Write};
use std::process::ExitCode;

use gdcloud::config::Config;
use gdcloud::credentials::protocol::{self, Action, HelperError};
use gdcloud::credentials::{log, open_store, CredentialStore};

const USAGE: &str = "Usage: docker-credential-gdcloud <store|get|erase|list|version>

A docker-credential-helpers compatible helper for gdcloud. Docker, podman, skopeo, buildah, oras and
containerd run it for registries listed under \"credHelpers\" (see `gdcloud auth configure-docker`).

  get      read a server URL on stdin, print its credentials as JSON
  store    read {\"ServerURL\",\"Username\",\"Secret\"} on stdin and save it
  erase    read a server URL on stdin and remove its credentials
  list     print {\"<server URL>\": \"<username>\"} for every entry
  version  print the version

The store is chosen by the gdcloud property auth/credential_store (auto, secret-service, file).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = match args.as_slice() {
        [one] => one.as_str(),
        _ => return usage(ExitCode::FAILURE),
    };
    let action = match arg {
        "version" | "--version" | "-v" => {
            println!(
                "docker-credential-gdcloud (gdcloud-kit) {}",
                gdcloud::VERSION
            );
            return ExitCode::SUCCESS;
        }
        "--help" | "-h" | "help" => return usage(ExitCode::SUCCESS),
        other => match Action::parse(other) {
            Some(a) => a,
            None => return usage(ExitCode::FAILURE),
        },
    };

    let config = match Config::load(None) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let log_path = config.get(log::LOG_PROPERTY);
    let mut server = None;
    let (store_name, result) = match open_store(&config) {
        Ok(stores) => {
            let result = protocol::handle(
                &stores,
                action,
                io::stdin().lock(),
                io::stdout().lock(),
                &mut server,
            );
            (stores.name(), result)
        }
        Err(e) => ("-", Err(HelperError::Store(e))),
    };
    if let Some(path) = log_path {
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(HelperError::NotFound) => "not-found".to_string(),
            Err(e) => format!("error: {e}"),
        };
        log::record(
            path.as_ref(),
            action.as_str(),
            server.as_deref(),
            store_name,
            &outcome,
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(HelperError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn usage(code: ExitCode) -> ExitCode {
    let _ = io::stdout().write_all(USAGE.as_bytes());
    code
}

/// Protocol clients read the error from stdout, one line.
fn fail(message: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", message.replace('\n', " "));
    let _ = out.flush();
    ExitCode::FAILURE
}
