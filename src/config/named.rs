//! Named configurations, kept as gcloud keeps them: one file `configurations/config_<name>` each, and
//! `active_config` at the top of the directory holding the active name (no newline). `default` exists
//! without a file, as gcloud creates it on first use.
//!
//! Every change is atomic (0600) under a directory lock: `active_config` under the lock of the
//! configuration directory, configuration files under the lock of `configurations/` (the one
//! property writes take, so a `create` or `delete` never interleaves with a `set`). A change that
//! needs both takes the directory's first.

use std::fs;
use std::io;
use std::path::Path;

use super::{file_for, read_active, valid_name, Error, Result, DEFAULT_NAME};
use crate::atomic;

/// The environment variable naming the configuration of one shell (and of a plugin the host runs).
pub const ACTIVE_ENV: &str = "GDCLOUD_ACTIVE_CONFIG_NAME";

/// The configuration one invocation uses: `flag` (`--configuration`), else [`ACTIVE_ENV`], else
/// `active_config`, else `default`.
pub fn selected(dir: &Path, flag: Option<&str>) -> Result<String> {
    let name = match flag.filter(|f| !f.is_empty()) {
        Some(f) => f.to_string(),
        None => match std::env::var(ACTIVE_ENV) {
            Ok(n) if !n.is_empty() => n,
            _ => activated(dir)?,
        },
    };
    checked(&name)?;
    Ok(name)
}

/// Which of [`selected`]'s sources chose the configuration, for `--verbosity debug`.
pub fn selected_by(flag: Option<&str>) -> String {
    if flag.is_some_and(|f| !f.is_empty()) {
        "--configuration".to_string()
    } else if std::env::var(ACTIVE_ENV).is_ok_and(|n| !n.is_empty()) {
        ACTIVE_ENV.to_string()
    } else {
        "active_config (else default)".to_string()
    }
}

/// The configuration `active_config` names (what `configurations activate` changes), else `default`.
pub fn activated(dir: &Path) -> Result<String> {
    Ok(read_active(dir)?.unwrap_or_else(|| DEFAULT_NAME.to_string()))
}

/// Whether configuration `name` exists: its file does, or it is `default`.
pub fn exists(dir: &Path, name: &str) -> bool {
    name == DEFAULT_NAME || file_for(dir, name).is_file()
}

/// Every configuration, sorted: those with a file, and `default`.
pub fn names(dir: &Path) -> Result<Vec<String>> {
    let folder = dir.join("configurations");
    let mut names = vec![DEFAULT_NAME.to_string()];
    let entries = match fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(source) => return Err(io_error("read", &folder, source)),
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_prefix("config_")) else {
            continue;
        };
        if valid_name(name) && entry.path().is_file() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Creates configuration `name` (an empty file); it must not exist yet.
pub fn create(dir: &Path, name: &str) -> Result<()> {
    checked(name)?;
    let folder = dir.join("configurations");
    let _lock = lock(&folder)?;
    if exists(dir, name) {
        return Err(Error::ConfigurationExists(name.to_string()));
    }
    let path = file_for(dir, name);
    atomic::write(&path, b"", 0o600).map_err(|e| io_error("write", &path, e))
}

/// Makes `name` the active configuration; it must exist.
pub fn activate(dir: &Path, name: &str) -> Result<()> {
    checked(name)?;
    let _lock = lock(dir)?;
    if !exists(dir, name) {
        return Err(Error::NoSuchConfiguration(name.to_string()));
    }
    let path = dir.join("active_config");
    atomic::write(&path, name.as_bytes(), 0o600).map_err(|e| io_error("write", &path, e))
}

/// Deletes configuration `name` and its properties; the active one (`active_config`'s) is refused.
pub fn delete(dir: &Path, name: &str) -> Result<()> {
    checked(name)?;
    let _outer = lock(dir)?;
    if activated(dir)? == name {
        return Err(Error::DeleteActive(name.to_string()));
    }
    let _inner = lock(&dir.join("configurations"))?;
    if !exists(dir, name) {
        return Err(Error::NoSuchConfiguration(name.to_string()));
    }
    let path = file_for(dir, name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        // `default` without a file: nothing to delete, and it is still there (as in gcloud).
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("delete", &path, e)),
    }
}

fn checked(name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

fn lock(dir: &Path) -> Result<atomic::DirLock> {
    atomic::DirLock::acquire(dir).map_err(|e| io_error("lock", dir, e))
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_activate_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(names(dir).unwrap(), ["default"]);
        assert_eq!(activated(dir).unwrap(), "default");
        create(dir, "work").unwrap();
        assert!(matches!(
            create(dir, "work"),
            Err(Error::ConfigurationExists(_))
        ));
        assert!(matches!(
            create(dir, "default"),
            Err(Error::ConfigurationExists(_))
        ));
        assert!(matches!(create(dir, "../x"), Err(Error::InvalidName(_))));
        assert_eq!(names(dir).unwrap(), ["default", "work"]);
        let file = dir.join("configurations/config_work");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        activate(dir, "work").unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("active_config")).unwrap(),
            "work"
        );
        assert_eq!(activated(dir).unwrap(), "work");
        assert!(matches!(
            activate(dir, "nope"),
            Err(Error::NoSuchConfiguration(_))
        ));
        assert!(matches!(delete(dir, "work"), Err(Error::DeleteActive(_))));
        assert!(file.exists());

        activate(dir, "default").unwrap();
        delete(dir, "work").unwrap();
        assert!(!file.exists());
        assert!(matches!(
            delete(dir, "work"),
            Err(Error::NoSuchConfiguration(_))
        ));
        assert_eq!(names(dir).unwrap(), ["default"]);
    }

    #[test]
    fn names_skip_what_is_not_a_configuration() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("configurations");
        fs::create_dir_all(folder.join("config_adir")).unwrap();
        for f in [
            "config_b",
            "config_Bad",
            "notes",
            ".config_b.x.tmp",
            "config_a",
        ] {
            fs::write(folder.join(f), "").unwrap();
        }
        assert_eq!(names(tmp.path()).unwrap(), ["a", "b", "default"]);
    }

    #[test]
    fn the_flag_wins() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("active_config"), "prod").unwrap();
        assert_eq!(selected(tmp.path(), Some("other")).unwrap(), "other");
        assert!(selected(tmp.path(), Some("Bad")).is_err());
    }
}
