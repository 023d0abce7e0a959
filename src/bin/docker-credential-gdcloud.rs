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
    // The payload is small (a URL, or credentials JSON): read it once, so the token path can look
    // at it and hand it on to the stores when the registry takes no tokens.
    // Bounded: a client sends a host name or a credentials JSON of a few KiB.
    let input = match gdcloud::bounded::read(io::stdin().lock(), 1 << 20, "the request on stdin") {
        Ok(input) => input,
        Err(e) => return fail(&HelperError::Read(e).to_string()),
    };
    if action == Action::Get {
        if let Some(code) = token_get(&config, &input, log_path.as_deref()) {
            return code;
        }
    }
    let mut server = None;
    let (store_name, result) = match open_store(&config) {
        Ok(stores) => {
            let result = protocol::handle(
                &stores,
                action,
                input.as_slice(),
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

/// `get` for a registry that takes tokens from the gdcloud sign-in (`auth/registry_audiences`);
/// `None` when the registry has no audience, and the stores answer instead.
fn token_get(config: &Config, input: &[u8], log_path: Option<&str>) -> Option<ExitCode> {
    if gdcloud::oidc::registry_audiences(config).is_empty() {
        return None;
    }
    let url = String::from_utf8_lossy(input).trim().to_string();
    let key = gdcloud::credentials::key::normalize(&url).ok()?;
    let audience = gdcloud::oidc::helper::audience_for(config, &key)?;
    let result = gdcloud::oidc::helper::credentials(config, &url, &audience);
    if let Some(path) = log_path {
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        log::record(
            path.as_ref(),
            "get",
            Some(&key),
            "gdcloud-sign-in",
            &outcome,
        );
    }
    Some(match result {
        Ok(creds) => {
            let mut out = io::stdout().lock();
            let written = serde_json::to_writer(&mut out, &creds)
                .map_err(io::Error::from)
                .and_then(|()| out.flush());
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("write stdout: {e}")),
            }
        }
        Err(reason) => fail(&reason),
    })
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
