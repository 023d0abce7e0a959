//! The docker-credential-helpers protocol, exactly as Docker, podman, skopeo and containerd speak it:
//! one action in argv, the payload on stdin, the answer (or the error line) on stdout.
//!
//! `handle` takes a reader and a writer so the wire format is tested without processes; the binary
//! only maps argv to an [`Action`] and errors to exit codes. The messages clients match on
//! (`credentials not found in native keychain`, …) exist once, in [`HelperError`].

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::key::{self, KeyError};
use super::{CredentialStore, Credentials, StoreError};

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

fn read_all(mut input: impl Read) -> Result<Vec<u8>, HelperError> {
    let mut buf = Vec::new();
    input.read_to_end(&mut buf).map_err(HelperError::Read)?;
    Ok(buf)
}

fn read_server_url(input: impl Read) -> Result<String, HelperError> {
    let buf = read_all(input)?;
    let text = String::from_utf8(buf).map_err(|_| HelperError::BadInput("not UTF-8".into()))?;
    Ok(text.trim().to_string())
}

/// Runs one action. `server` is filled with the entry's key as soon as it is known, for the log.
pub fn handle(
    store: &dyn CredentialStore,
    action: Action,
    input: impl Read,
    mut out: impl Write,
    server: &mut Option<String>,
) -> Result<(), HelperError> {
    match action {
        Action::Get => {
            let url = read_server_url(input)?;
            let key = key::normalize(&url)?;
            *server = Some(key.clone());
            let found = store.get(&key)?.ok_or(HelperError::NotFound)?;
            let answer = Credentials {
                server_url: url,
                username: found.username,
                secret: found.secret,
            };
            serde_json::to_writer(&mut out, &answer).map_err(|e| HelperError::Write(e.into()))?;
        }
        Action::Store => {
            let buf = read_all(input)?;
            let creds: Credentials = serde_json::from_slice(&buf).map_err(|e| {
                HelperError::BadInput(format!("line {} column {}", e.line(), e.column()))
            })?;
            let key = key::normalize(&creds.server_url)?;
            *server = Some(key.clone());
            if creds.username.is_empty() {
                return Err(HelperError::MissingUsername);
            }
            store.add(&key, &creds)?;
        }
        Action::Erase => {
            let url = read_server_url(input)?;
            let key = key::normalize(&url)?;
            *server = Some(key.clone());
            store.delete(&key)?;
        }
        Action::List => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::store::file::FileStore;

    fn run(store: &FileStore, action: &str, input: &str) -> Result<String, String> {
        let mut out = Vec::new();
        let mut server = None;
        handle(
            store,
            Action::parse(action).unwrap(),
            input.as_bytes(),
            &mut out,
            &mut server,
        )
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
