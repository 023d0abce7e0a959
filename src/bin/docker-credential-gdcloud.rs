//! `docker-credential-gdcloud`: the credential helper Docker, podman, skopeo, buildah, oras and
//! containerd run for registries configured with `credHelpers: {HOST: "gdcloud"}`.
//!
//! Kept deliberately small: no argument parser, no async runtime, no anyhow (with `RUST_BACKTRACE=1`
//! an anyhow error captures a backtrace, ~80 ms). argv → configuration → [`protocol::handle`] on
//! the chain of stores → one log line → exit. Errors go to stdout as one line with exit 1, which is
//! what the protocol's clients read.

use std::io::{self, Write};
use std::process::ExitCode;

use gdcloud::config::Config;
use gdcloud::credentials::log;
use gdcloud::credentials::protocol::{self, HelperError, Invocation};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let action = match Invocation::parse(&args) {
        Invocation::Run(action) => action,
        Invocation::Version => {
            let line = format!(
                "docker-credential-gdcloud (gdcloud-kit) {}\n",
                gdcloud::VERSION
            );
            return print(&line, ExitCode::SUCCESS);
        }
        Invocation::Help => return print(protocol::USAGE, ExitCode::SUCCESS),
        Invocation::Usage => return print(protocol::USAGE, ExitCode::FAILURE),
    };
    let config = match Config::load(None) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let stores = gdcloud::oidc::helper::open_store(&config);
    let outcome = protocol::handle(&stores, action, io::stdin().lock(), io::stdout().lock());
    if let Some(path) = config.get(log::LOG_PROPERTY) {
        log::record(path.as_ref(), &outcome);
    }
    match outcome.result {
        Ok(()) => ExitCode::SUCCESS,
        Err(HelperError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn print(text: &str, code: ExitCode) -> ExitCode {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    code
}

/// Protocol clients read the error from stdout, one line.
fn fail(message: &str) -> ExitCode {
    print(
        &format!("{}\n", message.replace('\n', " ")),
        ExitCode::FAILURE,
    )
}
