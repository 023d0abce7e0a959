//! `token-server --dir DIR --username USER` (password on stdin): the Docker token-auth server of
//! the integration tests (`tests/util/token_server.rs`) as a process, for `scripts/runbook-demo.sh`.
//!
//! The demo's registry stands in for Harbor, which authenticates with Docker token auth, so the
//! Distribution registry needs a token server as its realm; no real one (Harbor, docker_auth) can
//! be installed on these machines. This runs the one the tests already trust instead of a copy.
//!
//! It writes its RSA signing key and certificate into DIR, prints one line of JSON on stdout with
//! what the registry's `auth: token:` section needs (`realm`, `service`, `issuer`,
//! `rootcertbundle`), then serves until it is killed, logging each token request on stderr (method,
//! path, user name, scopes, status; never a password or a token).

#[path = "../tests/util/registry.rs"]
mod registry; // token_server.rs checks its tools with `super::registry::require_tool`
#[path = "../tests/util/token_server.rs"]
mod token_server;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: token-server --dir DIR --username USER   (password on stdin)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token-server: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let (dir, username) = parse_args(std::env::args().skip(1))?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    if let Some(p) = password.strip_suffix('\n') {
        password.truncate(p.strip_suffix('\r').unwrap_or(p).len());
    }
    if password.is_empty() {
        return Err("empty password on stdin".into());
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;

    let server = token_server::TokenServer::start(&dir, &username, &password);
    let line = serde_json::json!({
        "realm": server.realm(),
        "service": token_server::SERVICE,
        "issuer": token_server::ISSUER,
        "rootcertbundle": server.cert_path(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    drop(out);

    // Serve until killed (the demo's cleanup does it), logging new requests as they come.
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let requests = server.requests();
        for r in requests.iter().skip(seen) {
            eprintln!(
                "{} {} user={} grant_type={} scopes={} status={}",
                r.method,
                r.path,
                r.username.as_deref().unwrap_or("-"),
                r.grant_type.as_deref().unwrap_or("-"),
                if r.scopes.is_empty() {
                    "-".to_string()
                } else {
                    r.scopes.join(" ")
                },
                r.status
            );
        }
        seen = requests.len();
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(PathBuf, String), String> {
    let (mut dir, mut username) = (None, None);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--username" => username = Some(value("--username")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    match (dir, username) {
        (Some(d), Some(u)) if !u.is_empty() => Ok((d, u)),
        _ => Err(format!("--dir and --username are required\n{USAGE}")),
    }
}
