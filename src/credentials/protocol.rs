//! The docker-credential-helpers protocol, exactly as Docker, podman, skopeo and containerd speak it:
//! one action in argv, the payload on stdin, the answer (or the error line) on stdout.
//!
//! `handle` takes a reader and a writer so the wire format is tested without processes; the binary
//! only maps argv to an [`Action`] and errors to exit codes. The messages clients match on
//! (`credentials not found in native keychain`, …) exist once, in [`HelperError`].

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::{CredentialStore, Credentials, StoreError};
use crate::host::{self as key, KeyError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Get,
    Store,
    Erase,
    List,
}

impl Action {
    pub fn parse(arg: &str) -> Option<Action> {
        match arg {
            "get" => Some(Action::Get),
            "store" => Some(Action::Store),
            "erase" => Some(Action::Erase),
            "list" => Some(Action::List),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Store => "store",
            Action::Erase => "erase",
            Action::List => "list",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// Clients match this text to mean "no login here" (docker-credential-helpers' `errCredentialsNotFound`).
    #[error("credentials not found in native keychain")]
    NotFound,
    #[error("no credentials server URL")]
    MissingServerUrl,
    #[error("no credentials username")]
    MissingUsername,
    #[error("invalid credentials on stdin ({0}): send JSON with ServerURL, Username and Secret")]
    BadInput(String),
    #[error("{0}")]
    Key(KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read stdin: {0}")]
    Read(std::io::Error),
    #[error("write stdout: {0}")]
    Write(std::io::Error),
}

impl From<KeyError> for HelperError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Empty => HelperError::MissingServerUrl,
            other => HelperError::Key(other),
        }
    }
}

/// What the binary is asked to do by its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    Run(Action),
    Version,
    Help,
    /// Anything else: the usage text, exit 1.
    Usage,
}

impl Invocation {
    /// Reads the arguments after the program name: exactly one is expected.
    pub fn parse(args: &[String]) -> Invocation {
        let [arg] = args else {
            return Invocation::Usage;
        };
        match arg.as_str() {
            "version" | "--version" | "-v" => Invocation::Version,
            "--help" | "-h" | "help" => Invocation::Help,
            other => Action::parse(other).map_or(Invocation::Usage, Invocation::Run),
        }
    }
}

pub const USAGE: &str = "Usage: docker-credential-gdcloud <store|get|erase|list|version>

A docker-credential-helpers compatible helper for gdcloud. Docker, podman, skopeo, buildah, oras and
containerd run it for registries listed under \"credHelpers\" (see `gdcloud auth configure-docker`).

  get      read a server URL on stdin, print its credentials as JSON
  store    read {\"ServerURL\",\"Username\",\"Secret\"} on stdin and save it
  erase    read a server URL on stdin and remove its credentials
  list     print {\"<server URL>\": \"<username>\"} for every entry
  version  print the version

The store is chosen by the gdcloud property auth/credential_store (auto, secret-service, file).
";

/// The payload is small (a URL, or a credentials JSON of a few KiB): more is refused.
const INPUT_LIMIT: u64 = 1 << 20;

/// One call, decoded: the server URL as sent (echoed back by `get`) and its storage key.
enum Request {
    Get { url: String, key: String },
    Store { key: String, creds: Credentials },
    Erase { key: String },
    List,
}

impl Request {
    /// The one strict decode of stdin, and the one normalization of the server URL.
    fn decode(action: Action, input: impl Read) -> Result<Request, HelperError> {
        let buf = crate::bounded::read(input, INPUT_LIMIT, "the request on stdin")
            .map_err(HelperError::Read)?;
        let url = || -> Result<String, HelperError> {
            let text =
                std::str::from_utf8(&buf).map_err(|_| HelperError::BadInput("not UTF-8".into()))?;
            Ok(text.trim().to_string())
        };
        Ok(match action {
            Action::Get => {
                let url = url()?;
                let key = key::normalize(&url)?;
                Request::Get { url, key }
            }
            Action::Store => {
                let creds: Credentials = serde_json::from_slice(&buf).map_err(|e| {
                    HelperError::BadInput(format!("line {} column {}", e.line(), e.column()))
                })?;
                let key = key::normalize(&creds.server_url)?;
                Request::Store { key, creds }
            }
            Action::Erase => Request::Erase {
                key: key::normalize(&url()?)?,
            },
            Action::List => Request::List,
        })
    }

    fn key(&self) -> Option<&str> {
        match self {
            Request::Get { key, .. } | Request::Store { key, .. } | Request::Erase { key } => {
                Some(key)
            }
            Request::List => None,
        }
    }

    fn run(self, store: &dyn CredentialStore, mut out: impl Write) -> Result<(), HelperError> {
        match self {
            Request::Get { url, key } => {
                let found = store.get(&key)?.ok_or(HelperError::NotFound)?;
                let answer = Credentials {
                    server_url: url,
                    username: found.username,
                    secret: found.secret,
                };
                serde_json::to_writer(&mut out, &answer)
                    .map_err(|e| HelperError::Write(e.into()))?;
            }
            Request::Store { key, creds } => {
                if creds.username.is_empty() {
                    return Err(HelperError::MissingUsername);
                }
                store.add(&key, &creds)?;
            }
            Request::Erase { key } => store.delete(&key)?,
            Request::List => {
                let map: BTreeMap<String, String> = store
                    .list()?
                    .into_iter()
                    .map(|l| (l.server_url, l.username))
                    .collect();
                serde_json::to_writer(&mut out, &map).map_err(|e| HelperError::Write(e.into()))?;
            }
        }
        out.flush().map_err(HelperError::Write)
    }
}

/// What one call did, as the log line (`auth/helper_log`) tells it.
#[derive(Debug)]
pub struct Outcome {
    pub action: Action,
    /// The entry's key, once the request named one.
    pub server: Option<String>,
    /// The store that answered (the chain's member for `get`).
    pub store: &'static str,
    pub result: Result<(), HelperError>,
}

impl Outcome {
    /// `ok`, `not-found` or `error: …`.
    pub fn summary(&self) -> String {
        match &self.result {
            Ok(()) => "ok".to_string(),
            Err(HelperError::NotFound) => "not-found".to_string(),
            Err(e) => format!("error: {e}"),
        }
    }
}

/// Runs one action: decodes `input`, asks `store`, writes the answer to `out`.
pub fn handle(
    store: &dyn CredentialStore,
    action: Action,
    input: impl Read,
    out: impl Write,
) -> Outcome {
    let (server, name, result) = match Request::decode(action, input) {
        Ok(request) => {
            let server = request.key().map(str::to_string);
            let name = match &request {
                Request::Get { key, .. } => store.name_for(key),
                _ => store.name(),
            };
            (server, name, request.run(store, out))
        }
        Err(e) => (None, store.name(), Err(e)),
    };
    Outcome {
        action,
        server,
        store: name,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::store::file::FileStore;

    fn run(store: &FileStore, action: &str, input: &str) -> Result<String, String> {
        let mut out = Vec::new();
        handle(
            store,
            Action::parse(action).unwrap(),
            input.as_bytes(),
            &mut out,
        )
        .result
        .map(|()| String::from_utf8(out).unwrap())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn vectors() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path());
        assert_eq!(
            run(&s, "get", "127.0.0.1:5000").unwrap_err(),
            "credentials not found in native keychain"
        );
        assert_eq!(
            run(&s, "get", "  \n").unwrap_err(),
            "no credentials server URL"
        );
        assert_eq!(
            run(&s, "store", r#"{"ServerURL":"h:1","Secret":"x"}"#).unwrap_err(),
            "no credentials username"
        );
        assert_eq!(
            run(
                &s,
                "store",
                r#"{"ServerURL":"","Username":"u","Secret":"x"}"#
            )
            .unwrap_err(),
            "no credentials server URL"
        );
        assert!(run(&s, "store", "not json")
            .unwrap_err()
            .starts_with("invalid credentials"));
        run(
            &s,
            "store",
            r#"{"ServerURL":"https://H:1/","Username":"<token>","Secret":"tok"}"#,
        )
        .unwrap();
        assert_eq!(
            run(&s, "get", "h:1/proj/repo\n").unwrap(),
            r#"{"ServerURL":"h:1/proj/repo","Username":"<token>","Secret":"tok"}"#
        );
        assert_eq!(
            run(&s, "list", "").unwrap(),
            r#"{"https://H:1/":"<token>"}"#
        );
        run(&s, "erase", "https://h:1").unwrap();
        run(&s, "erase", "https://h:1").unwrap();
        assert_eq!(run(&s, "list", "").unwrap(), "{}");
    }

    #[test]
    fn large_secret_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path());
        let big = "a".repeat(100 * 1024);
        let msg = serde_json::json!({"ServerURL":"h","Username":"u","Secret":big}).to_string();
        run(&s, "store", &msg).unwrap();
        let got: serde_json::Value = serde_json::from_str(&run(&s, "get", "h").unwrap()).unwrap();
        assert_eq!(got["Secret"].as_str().unwrap().len(), 100 * 1024);
    }
}
