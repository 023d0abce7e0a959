//! Untyped edits of Docker's `config.json` and the containers `auth.json`.
//!
//! These files belong to other tools and hold keys we do not know (`auths`, `proxies`, plugin
//! settings, …): they are edited as a JSON tree with key order preserved, so everything we do not
//! touch survives in meaning. Malformed JSON is refused and left untouched; a symlinked file stays a
//! symlink; the mode of an existing file is kept; the first change leaves a `.bak` beside it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::atomic;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path} is not valid JSON (line {line}, column {column}); fix it by hand, nothing was changed")]
    Malformed {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{path}: expected a JSON object at the top{0}; fix it by hand, nothing was changed", if let Some(k) = .key { format!(" and in {k:?}") } else { String::new() })]
    NotAnObject { path: PathBuf, key: Option<String> },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot find the home directory: set HOME or DOCKER_CONFIG")]
    NoHome,
}

pub type Result<T> = std::result::Result<T, Error>;

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Docker's client configuration: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    Ok(dirs::home_dir()
        .ok_or(Error::NoHome)?
        .join(".docker/config.json"))
}

/// The auth file podman, buildah and skopeo read first (containers-auth.json(5)):
/// `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `/run/containers/<uid>/auth.json`.
pub fn containers_auth_path() -> PathBuf {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|d| !d.is_empty()) {
        return PathBuf::from(f);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("containers/auth.json");
    }
    PathBuf::from(format!("/run/containers/{}/auth.json", crate::fs::euid()))
}

/// One JSON configuration file loaded for editing. Take the lock of its directory before loading
/// (see [`JsonFile::lock`]) and keep it until [`JsonFile::save`] returns.
#[derive(Debug)]
pub struct JsonFile {
    path: PathBuf,
    target: PathBuf,
    original: Option<Vec<u8>>,
    root: Map<String, Value>,
}

impl JsonFile {
    /// Locks the directory that really holds `path` (through symlinks) against concurrent editors.
    pub fn lock(path: &Path) -> Result<atomic::DirLock> {
        let target = atomic::resolve_target(path).map_err(io_err("resolve", path))?;
        let dir = target.parent().unwrap_or(Path::new("."));
        atomic::DirLock::acquire(dir).map_err(io_err("lock", dir))
    }

    /// Reads `path`; a missing (or empty) file is an empty object.
    pub fn load(path: &Path) -> Result<JsonFile> {
        let target = atomic::resolve_target(path).map_err(io_err("resolve", path))?;
        let original = match fs::read(&target) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("read", path)(e)),
        };
        let root = match &original {
            Some(b) if !b.iter().all(u8::is_ascii_whitespace) => {
                let v: Value = serde_json::from_slice(b).map_err(|e| Error::Malformed {
                    path: path.to_path_buf(),
                    line: e.line(),
                    column: e.column(),
                })?;
                match v {
                    Value::Object(m) => m,
                    _ => {
                        return Err(Error::NotAnObject {
                            path: path.to_path_buf(),
                            key: None,
                        })
                    }
                }
            }
            _ => Map::new(),
        };
        Ok(JsonFile {
            path: path.to_path_buf(),
            target,
            original,
            root,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The object under `key`, which must be an object when present.
    pub fn object(&self, key: &str) -> Result<Option<&Map<String, Value>>> {
        match self.root.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(Error::NotAnObject {
                path: self.path.clone(),
                key: Some(key.to_string()),
            }),
        }
    }

    /// The object under `key`, created when absent.
    pub fn object_mut(&mut self, key: &str) -> Result<&mut Map<String, Value>> {
        self.object(key)?;
        let entry = self
            .root
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        Ok(entry.as_object_mut().expect("checked above"))
    }

    /// The JSON that [`JsonFile::save`] would write.
    pub fn render(&self) -> Vec<u8> {
        let mut out =
            serde_json::to_vec_pretty(&Value::Object(self.root.clone())).expect("JSON serializes");
        out.push(b'\n');
        out
    }

    /// Writes the file atomically, keeping the mode of an existing file (new files are 0600) and
    /// leaving `<file>.bak` with the original content when none exists yet. Returns the backup made.
    pub fn save(&self) -> Result<Option<PathBuf>> {
        let mode = atomic::existing_mode(&self.target).unwrap_or(0o600);
        let mut backup = None;
        if let Some(original) = &self.original {
            let mut name = self.target.file_name().unwrap_or_default().to_os_string();
            name.push(".bak");
            let bak = self.target.with_file_name(name);
            if !bak.exists() {
                atomic::write(&bak, original, mode).map_err(io_err("write", &bak))?;
                backup = Some(bak);
            }
        }
        atomic::write(&self.target, &self.render(), mode).map_err(io_err("write", &self.path))?;
        Ok(backup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_preserves_unknown_keys_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        fs::write(
            &p,
            r#"{"zeta":{"a":[1,2,{"b":null}]},"auths":{"h":{"auth":"eA=="}},"alpha":"x"}"#,
        )
        .unwrap();
        let mut f = JsonFile::load(&p).unwrap();
        f.object_mut("credHelpers")
            .unwrap()
            .insert("h".into(), "gdcloud".into());
        let bak = f.save().unwrap();
        assert!(bak.is_some());
        let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["zeta", "auths", "alpha", "credHelpers"]);
        assert_eq!(v["zeta"]["a"][2]["b"], Value::Null);
        assert_eq!(v["auths"]["h"]["auth"], "eA==");
    }

    #[test]
    fn malformed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        fs::write(&p, "{\"auths\": {").unwrap();
        assert!(matches!(JsonFile::load(&p), Err(Error::Malformed { .. })));
        fs::write(&p, "[1]").unwrap();
        assert!(matches!(JsonFile::load(&p), Err(Error::NotAnObject { .. })));
        fs::write(&p, r#"{"credHelpers": "x"}"#).unwrap();
        let mut f = JsonFile::load(&p).unwrap();
        assert!(f.object_mut("credHelpers").is_err());
    }
}
