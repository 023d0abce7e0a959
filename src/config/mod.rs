//! gdcloud's configuration: the directory, the named configurations and their `section/key`
//! properties, so that our tools and the gdcloud CLI read and write the same settings.
//!
//! Layout (as gcloud): `<dir>/active_config` names the active configuration, properties live in
//! `<dir>/configurations/config_<name>`. The directory is `$GDCLOUD_CONFIG`, else the user config dir
//! plus `gdcloud`. A property `section/key` is overridden by the variable `GDCLOUD_<SECTION>_<KEY>`.

pub mod ini;
pub mod named;
pub mod properties;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic;

pub use ini::Document;

/// The configuration used when nothing names one.
pub const DEFAULT_NAME: &str = "default";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot find the user configuration directory: set GDCLOUD_CONFIG or HOME")]
    NoConfigDir,
    #[error("invalid configuration name {0:?}: use lower-case letters, digits and hyphens, starting with a letter")]
    InvalidName(String),
    #[error("invalid property {0:?}: use SECTION/KEY, e.g. storage/s3_endpoint")]
    InvalidProperty(String),
    #[error("invalid value for {0}: a value must fit on one line")]
    InvalidValue(String),
    #[error("invalid value for {property}: {reason}")]
    BadValue {
        property: &'static str,
        reason: String,
    },
    #[error("unknown property {name}: did you mean {closest}? (`gdcloud-config list --all` lists every property)")]
    UnknownProperty { name: String, closest: &'static str },
    #[error("configuration {0} does not exist: create it with `gdcloud-config configurations create {0}`")]
    NoSuchConfiguration(String),
    #[error("configuration {0} already exists: activate it with `gdcloud-config configurations activate {0}`")]
    ConfigurationExists(String),
    #[error("configuration {0} is active and cannot be deleted: activate another first (`gdcloud-config configurations activate NAME`)")]
    DeleteActive(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A property name split into its section and key; a bare key means `core/KEY`, as in gcloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub section: String,
    pub key: String,
}

impl Property {
    pub fn parse(name: &str) -> Result<Property> {
        let (section, key) = match name.split_once('/') {
            Some((s, k)) => (s, k),
            None => ("core", name),
        };
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !ok(section) || !ok(key) {
            return Err(Error::InvalidProperty(name.to_string()));
        }
        Ok(Property {
            section: section.to_string(),
            key: key.to_string(),
        })
    }

    /// The environment variable that overrides this property.
    pub fn env_var(&self) -> String {
        format!("GDCLOUD_{}_{}", self.section, self.key)
            .to_ascii_uppercase()
            .replace('-', "_")
    }
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.section, self.key)
    }
}

/// The gdcloud configuration directory.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("GDCLOUD_CONFIG").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        crate::debug::log(format_args!(
            "configuration directory {} (from GDCLOUD_CONFIG)",
            dir.display()
        ));
        return Ok(dir);
    }
    let dir = dirs::config_dir()
        .map(|d| d.join("gdcloud"))
        .ok_or(Error::NoConfigDir)?;
    crate::debug::log(format_args!(
        "configuration directory {} (the default)",
        dir.display()
    ));
    Ok(dir)
}

pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The active configuration of one invocation: which file, and its parsed properties.
#[derive(Debug, Clone)]
pub struct Config {
    dir: PathBuf,
    name: String,
    doc: Document,
}

impl Config {
    /// Loads the configuration chosen by `flag` (`--configuration`), else `GDCLOUD_ACTIVE_CONFIG_NAME`,
    /// else `<dir>/active_config`, else `default`. A missing file is an empty configuration.
    pub fn load(flag: Option<&str>) -> Result<Config> {
        Config::load_from(config_dir()?, flag)
    }

    pub fn load_from(dir: PathBuf, flag: Option<&str>) -> Result<Config> {
        let name = named::selected(&dir, flag)?;
        let path = file_for(&dir, &name);
        crate::debug::log(format_args!(
            "configuration {name} ({}) from {}",
            path.display(),
            named::selected_by(flag)
        ));
        let doc = match fs::read_to_string(&path) {
            Ok(text) => Document::parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                crate::debug::log(format_args!(
                    "{} does not exist: no properties set",
                    path.display()
                ));
                Document::default()
            }
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        Ok(Config { dir, name, doc })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding this configuration's properties.
    pub fn path(&self) -> PathBuf {
        file_for(&self.dir, &self.name)
    }

    /// Whether this configuration was created (its file exists); `default` always exists, as gcloud
    /// creates it on first use.
    pub fn exists(&self) -> bool {
        named::exists(&self.dir, &self.name)
    }

    /// The value the file holds for `property`, ignoring environment overrides.
    pub fn file_value(&self, property: &Property) -> Option<&str> {
        self.doc.get(&property.section, &property.key)
    }

    /// Every `(section, key, value)` the file holds, in file order.
    pub fn file_entries(&self) -> Vec<(&str, &str, &str)> {
        self.doc.entries()
    }

    /// The property's value: its environment override when set (even empty: that unsets it, as in
    /// gcloud), else the file's value. Empty values count as unset.
    pub fn get(&self, property: &str) -> Option<String> {
        let p = Property::parse(property).ok()?;
        let value = match std::env::var(p.env_var()) {
            Ok(v) => v,
            Err(_) => self.doc.get(&p.section, &p.key)?.to_string(),
        };
        Some(value).filter(|v| !v.is_empty())
    }

    /// Sets properties in this configuration's file: one atomic, locked read-modify-write that keeps
    /// every other line, so a concurrent `set` from another process is never lost.
    pub fn set_many(&mut self, pairs: &[(&str, &str)]) -> Result<()> {
        let mut parsed = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let p = Property::parse(name)?;
            if value.contains(['\n', '\r']) {
                return Err(Error::InvalidValue(p.to_string()));
            }
            parsed.push((p, *value));
        }
        self.edit(|doc| {
            for (p, value) in &parsed {
                doc.set(&p.section, &p.key, value);
            }
        })
    }

    pub fn set(&mut self, property: &str, value: &str) -> Result<()> {
        self.set_many(&[(property, value)])
    }

    /// Removes a property from the file; returns whether it was there.
    pub fn unset(&mut self, property: &str) -> Result<bool> {
        let p = Property::parse(property)?;
        let mut removed = false;
        self.edit(|doc| removed = doc.remove(&p.section, &p.key))?;
        Ok(removed)
    }

    fn edit(&mut self, change: impl FnOnce(&mut Document)) -> Result<()> {
        let path = self.path();
        let dir = path.parent().expect("configuration file has a parent");
        let io_err = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                action,
                path,
                source,
            }
        };
        let _lock = atomic::DirLock::acquire(dir).map_err(io_err("lock", dir))?;
        // Re-read under the lock: another process may have written since we loaded.
        let mut doc = match fs::read_to_string(&path) {
            Ok(text) => Document::parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Document::default(),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        change(&mut doc);
        atomic::write(&path, doc.render().as_bytes(), 0o600).map_err(io_err("write", &path))?;
        self.doc = doc;
        Ok(())
    }
}

pub(crate) fn file_for(dir: &Path, name: &str) -> PathBuf {
    dir.join("configurations").join(format!("config_{name}"))
}

pub(crate) fn read_active(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("active_config");
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "read",
            path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names() {
        let p = Property::parse("storage/s3_endpoint").unwrap();
        assert_eq!(p.env_var(), "GDCLOUD_STORAGE_S3_ENDPOINT");
        assert_eq!(Property::parse("account").unwrap().section, "core");
        assert!(Property::parse("a/b/c").is_err());
        assert!(Property::parse("/x").is_err());
        assert!(Property::parse("s/").is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(valid_name("default"));
        assert!(valid_name("prod-2"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name("Prod"));
        assert!(!valid_name(""));
    }

    #[test]
    fn set_keeps_other_lines_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("configurations/config_work");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "# keep me\n[core]\nproject = p\n").unwrap();
        let mut c = Config::load_from(dir.path().to_path_buf(), Some("work")).unwrap();
        c.set("storage/s3_endpoint", "https://x").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# keep me\n[core]\nproject = p\n\n[storage]\ns3_endpoint = https://x\n"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(c.set("a/b", "two\nlines").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn active_config_file_selects() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("active_config"), "prod\n").unwrap();
        // The environment may name one in a developer's shell; the flag always wins.
        let c = Config::load_from(dir.path().to_path_buf(), Some("other")).unwrap();
        assert_eq!(c.name(), "other");
        assert!(Config::load_from(dir.path().to_path_buf(), Some("Bad/Name")).is_err());
    }
}
