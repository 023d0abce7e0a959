//! Credentials in one JSON file in the gdcloud configuration directory, for machines without a
//! Secret Service (headless servers, CI, containers).
//!
//! The file is 0600 and only ever replaced atomically under the directory lock, so concurrent
//! `store`s from many processes keep every entry and a reader never sees a torn file. A file that does
//! not parse is never overwritten: the user's other entries would be lost.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CredentialStore, Listed, Result, StoreError};
use crate::atomic;
use crate::credentials::Credentials;

/// The file's name inside the configuration directory.
pub const FILE_NAME: &str = "docker_credentials.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    #[serde(default)]
    credentials: BTreeMap<String, Credentials>,
}

#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(config_dir: &Path) -> FileStore {
        FileStore {
            path: config_dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Contents> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "read",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        parse(&bytes).map_err(|reason| StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        })
    }

    fn update(&self, change: impl FnOnce(&mut Contents) -> bool) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let _lock = atomic::DirLock::acquire(dir).map_err(|source| StoreError::Io {
            action: "lock",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut contents = self.read()?;
        if !change(&mut contents) {
            return Ok(());
        }
        contents.version = 1;
        let mut text = serde_json::to_vec_pretty(&contents).expect("credentials serialize");
        text.push(b'\n');
        atomic::write(&self.path, &text, 0o600).map_err(|source| StoreError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        })
    }
}

/// Parses the file's bytes; the error says what is wrong without quoting content (it holds secrets).
fn parse(bytes: &[u8]) -> std::result::Result<Contents, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Contents::default());
    }
    let contents: Contents = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "JSON error at line {} column {}: {:?}",
            e.line(),
            e.column(),
            e.classify()
        )
    })?;
    if contents.version > 1 {
        return Err(format!(
            "written by a newer version (format {}); upgrade gdcloud-kit",
            contents.version
        ));
    }
    Ok(contents)
}

impl CredentialStore for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    fn add(&self, key: &str, creds: &Credentials) -> Result<()> {
        self.update(|c| {
            c.credentials.insert(key.to_string(), creds.clone());
            true
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        // Reading first keeps a missing file missing: erasing nothing writes nothing.
        if !self.read()?.credentials.contains_key(key) {
            return Ok(());
        }
        self.update(|c| c.credentials.remove(key).is_some())
    }

    fn get(&self, key: &str) -> Result<Option<Credentials>> {
        Ok(self.read()?.credentials.remove(key))
    }

    fn list(&self) -> Result<Vec<Listed>> {
        Ok(self
            .read()?
            .credentials
            .into_values()
            .map(|c| Listed {
                server_url: c.server_url,
                username: c.username,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn creds(user: &str) -> Credentials {
        Credentials {
            server_url: "https://h:1/".into(),
            username: user.into(),
            secret: Secret::new("s"),
        }
    }

    #[test]
    fn add_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path());
        assert!(s.get("h:1").unwrap().is_none());
        s.delete("h:1").unwrap();
        assert!(!s.path().exists(), "erasing nothing writes nothing");
        s.add("h:1", &creds("u")).unwrap();
        s.add("h:2", &creds("v")).unwrap();
        assert_eq!(s.get("h:1").unwrap().unwrap().username, "u");
        assert_eq!(s.list().unwrap().len(), 2);
        s.delete("h:1").unwrap();
        assert!(s.get("h:1").unwrap().is_none());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn corrupt_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path());
        fs::write(
            s.path(),
            b"{\"version\":1,\"credentials\":{\"h\":{\"Secret\":\"topsecret\"",
        )
        .unwrap();
        let err = s.add("h:1", &creds("u")).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
        assert!(!err.contains("topsecret"));
        assert!(fs::read(s.path()).unwrap().ends_with(b"\"topsecret\""));
    }
}
