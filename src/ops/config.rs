//! `gdcloud config`: set, read and list the properties our tools read, and manage named
//! configurations, with gcloud's verbs. Properties are checked against one table
//! (`config::properties`), so a typo is refused with the closest name instead of being written where
//! nothing reads it; secrets are masked in listings unless asked for. Writes are the configuration
//! module's: atomic, 0600, under its locks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{self, named, properties, Config, Property};

pub use crate::config::properties::{Known, KNOWN};
pub use crate::config::Error;

pub type Result<T> = std::result::Result<T, Error>;

/// What a masked secret shows: the same for every value, so not even its length leaks.
pub const MASK: &str = "********";

/// Properties by section, then key; `None` is an unset property (`list --all`).
pub type Sections = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// A property written or removed.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub configuration: String,
    pub property: String,
    /// For `unset`: whether the file held it.
    pub removed: bool,
    /// The environment variable that overrides the file's value in this shell, if set.
    pub overridden_by: Option<String>,
}

/// Whether `property` holds a secret (its value belongs on stdin, never in argv).
pub fn is_secret(property: &str) -> bool {
    properties::resolve(property).is_ok_and(|k| k.secret)
}

/// A value piped in for `set PROPERTY -`: at most a token's size (more is refused, not cut), UTF-8,
/// one line end dropped, not empty.
pub fn read_value(r: impl std::io::Read) -> std::io::Result<String> {
    let bytes = crate::bounded::read(r, crate::bounded::TOKEN, "the value on stdin")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "the value is not UTF-8")
    })?;
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stdin was empty; pipe the value in, e.g. `printf %s \"$VALUE\" | gdcloud config set PROPERTY -`",
        ));
    }
    Ok(value.to_string())
}

/// A property another command wrote from what it discovered (`configure-docker` the cluster's
/// registry, `storage configure` the bucket key's secret), so later commands need no flag for it
/// and the user learns where the value came from. Secret values are never held here.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub configuration: String,
    pub property: String,
    /// The value as shown ([`MASK`] for a secret).
    pub value: String,
    /// Where the value was read (`the cluster's HarborCluster`, `secret NS/NAME`).
    pub source: String,
}

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Set {} to {} in configuration {} (from {})",
            self.property,
            crate::text::Escaped(&self.value),
            self.configuration,
            self.source
        )
    }
}

/// A property's value as our tools would read it.
#[derive(Debug, Clone, Serialize)]
pub struct Value {
    pub configuration: String,
    pub property: String,
    pub value: Option<String>,
    /// The environment variable the value came from, when not the file.
    pub from_env: Option<String>,
}

/// The properties of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub name: String,
    pub is_active: bool,
    pub properties: Sections,
}

/// What `list` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListOptions {
    /// Known properties that are not set too.
    pub all: bool,
    /// Secrets in clear.
    pub show_secrets: bool,
}

/// A configuration made active, and whether this shell still uses another one.
#[derive(Debug, Clone, Serialize)]
pub struct Activated {
    pub name: String,
    /// `GDCLOUD_ACTIVE_CONFIG_NAME`'s value when it names another configuration.
    pub overridden_by: Option<String>,
}

/// The configuration directory the verbs work on.
#[derive(Debug, Clone)]
pub struct Configurations {
    dir: PathBuf,
}

impl Configurations {
    /// The user's (`GDCLOUD_CONFIG`, else the user configuration directory).
    pub fn open() -> Result<Configurations> {
        Ok(Configurations::at(config::config_dir()?))
    }

    pub fn at(dir: impl Into<PathBuf>) -> Configurations {
        Configurations { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration `flag` (`--configuration`) selects, else the active one; it must exist.
    fn load(&self, flag: Option<&str>) -> Result<Config> {
        let config = Config::load_from(self.dir.clone(), flag)?;
        if !config.exists() {
            return Err(Error::NoSuchConfiguration(config.name().to_string()));
        }
        Ok(config)
    }

    /// `set PROPERTY VALUE`: a known property, a valid value.
    pub fn set(&self, flag: Option<&str>, property: &str, value: &str) -> Result<Change> {
        let known = properties::resolve(property)?;
        properties::check_value(known, value)?;
        let mut config = self.load(flag)?;
        config.set(known.name, value)?;
        Ok(change(&config, known.name, false))
    }

    /// `unset PROPERTY`: a known property, or any the file holds (a stale one can still go).
    pub fn unset(&self, flag: Option<&str>, property: &str) -> Result<Change> {
        let mut config = self.load(flag)?;
        let parsed = Property::parse(property)?;
        if config.file_value(&parsed).is_none() {
            properties::resolve(property)?;
        }
        let name = parsed.to_string();
        let removed = config.unset(&name)?;
        Ok(change(&config, &name, removed))
    }

    /// `get PROPERTY`: the value our tools would read (environment override first).
    pub fn get(&self, flag: Option<&str>, property: &str) -> Result<Value> {
        let known = properties::resolve(property)?;
        let config = self.load(flag)?;
        let from_env = env_override(known.name);
        Ok(Value {
            configuration: config.name().to_string(),
            property: known.name.to_string(),
            value: config.get(known.name),
            from_env: from_env.filter(|_| config.get(known.name).is_some()),
        })
    }

    /// `list`: every property set in the selected configuration (or its environment), sorted.
    pub fn list(&self, flag: Option<&str>, opts: ListOptions) -> Result<Listing> {
        let config = self.load(flag)?;
        let mut sections = file_sections(&config, opts.show_secrets);
        for known in KNOWN {
            let value = config
                .get(known.name)
                .map(|v| masked(known, v, opts.show_secrets));
            let p = Property::parse(known.name)?;
            if value.is_some() || opts.all {
                sections.entry(p.section).or_default().insert(p.key, value);
            } else if let Some(keys) = sections.get_mut(&p.section) {
                // Emptied by an environment override: unset for our tools.
                keys.remove(&p.key);
            }
        }
        sections.retain(|_, keys| !keys.is_empty());
        Ok(Listing {
            is_active: true,
            name: config.name().to_string(),
            properties: sections,
        })
    }

    /// `configurations list`: every configuration with its file's properties, secrets masked.
    pub fn configurations(&self, flag: Option<&str>) -> Result<Vec<Listing>> {
        let selected = named::selected(&self.dir, flag)?;
        named::names(&self.dir)?
            .into_iter()
            .map(|name| self.describe_as(&name, &selected))
            .collect()
    }

    /// `configurations describe NAME`.
    pub fn describe(&self, flag: Option<&str>, name: &str) -> Result<Listing> {
        let selected = named::selected(&self.dir, flag)?;
        self.describe_as(name, &selected)
    }

    fn describe_as(&self, name: &str, selected: &str) -> Result<Listing> {
        let config = self.load(Some(name))?;
        Ok(Listing {
            name: name.to_string(),
            is_active: name == selected,
            properties: file_sections(&config, false),
        })
    }

    /// `configurations create NAME [--activate]`.
    pub fn create(&self, name: &str, activate: bool) -> Result<Option<Activated>> {
        named::create(&self.dir, name)?;
        activate.then(|| self.activate(name)).transpose()
    }

    /// `configurations activate NAME`: writes `active_config`.
    pub fn activate(&self, name: &str) -> Result<Activated> {
        named::activate(&self.dir, name)?;
        let overridden_by = std::env::var(named::ACTIVE_ENV)
            .ok()
            .filter(|n| !n.is_empty() && n != name);
        Ok(Activated {
            name: name.to_string(),
            overridden_by,
        })
    }

    /// `configurations delete NAME`: neither the active configuration nor the one this invocation
    /// selected (`--configuration`, `GDCLOUD_ACTIVE_CONFIG_NAME`).
    pub fn delete(&self, flag: Option<&str>, name: &str) -> Result<()> {
        if named::selected(&self.dir, flag)? == name {
            return Err(Error::DeleteActive(name.to_string()));
        }
        named::delete(&self.dir, name)
    }
}

fn change(config: &Config, property: &str, removed: bool) -> Change {
    Change {
        configuration: config.name().to_string(),
        property: property.to_string(),
        removed,
        overridden_by: env_override(property),
    }
}

/// The variable overriding `property`, when it is set in this environment.
fn env_override(property: &str) -> Option<String> {
    let var = Property::parse(property).ok()?.env_var();
    std::env::var_os(&var).map(|_| var)
}

/// The file's entries by section and key (the last one of a key wins, as when read).
fn file_sections(config: &Config, show_secrets: bool) -> Sections {
    let mut sections = Sections::new();
    for (section, key, value) in config.file_entries() {
        let name = format!("{section}/{key}");
        let value = match Property::parse(&name)
            .ok()
            .and_then(|p| properties::lookup(&p))
        {
            Some(known) => masked(known, value.to_string(), show_secrets),
            None => value.to_string(),
        };
        let keys = sections.entry(section.to_string()).or_default();
        if value.is_empty() {
            keys.remove(key);
        } else {
            keys.insert(key.to_string(), Some(value));
        }
    }
    sections.retain(|_, keys| !keys.is_empty());
    sections
}

fn masked(known: &Known, value: String, show_secrets: bool) -> String {
    if known.secret && !show_secrets {
        MASK.to_string()
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, Configurations) {
        let tmp = tempfile::tempdir().unwrap();
        let c = Configurations::at(tmp.path());
        (tmp, c)
    }

    #[test]
    fn set_get_unset_round_trip() {
        let (_tmp, c) = fresh();
        c.set(Some("default"), "artifacts/registry", "h.example")
            .unwrap();
        let v = c.get(Some("default"), "artifacts/registry").unwrap();
        assert_eq!(v.value.as_deref(), Some("h.example"));
        let gone = c.unset(Some("default"), "artifacts/registry").unwrap();
        assert!(gone.removed);
        assert!(
            !c.unset(Some("default"), "artifacts/registry")
                .unwrap()
                .removed
        );
        assert_eq!(
            c.get(Some("default"), "artifacts/registry").unwrap().value,
            None
        );
        assert!(matches!(
            c.set(Some("default"), "artifacts/registy", "x"),
            Err(Error::UnknownProperty {
                closest: "artifacts/registry",
                ..
            })
        ));
        assert!(matches!(
            c.set(Some("nope"), "artifacts/registry", "x"),
            Err(Error::NoSuchConfiguration(_))
        ));
    }

    #[test]
    fn list_masks_secrets_and_keeps_unknown_file_entries() {
        let (tmp, c) = fresh();
        let file = tmp.path().join("configurations/config_default");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            "[core]\nproject = p\n[storage]\ns3_secret_access_key = s3cret\ns3_endpoint =\n",
        )
        .unwrap();
        let l = c.list(Some("default"), ListOptions::default()).unwrap();
        assert_eq!(l.properties["core"]["project"].as_deref(), Some("p"));
        assert_eq!(
            l.properties["storage"]["s3_secret_access_key"].as_deref(),
            Some(MASK)
        );
        assert!(!l.properties["storage"].contains_key("s3_endpoint"));
        assert!(!l.properties.contains_key("auth"));
        let opts = ListOptions {
            all: true,
            show_secrets: true,
        };
        let l = c.list(Some("default"), opts).unwrap();
        assert_eq!(
            l.properties["storage"]["s3_secret_access_key"].as_deref(),
            Some("s3cret")
        );
        assert_eq!(l.properties["storage"]["s3_endpoint"], None);
        assert_eq!(l.properties["auth"].len(), 7);
        // An unknown property the file holds can still be removed.
        assert!(c.unset(Some("default"), "core/project").unwrap().removed);
        assert!(c.unset(Some("default"), "core/project").is_err());
    }

    #[test]
    fn configurations_and_delete_rules() {
        let (_tmp, c) = fresh();
        // Flags everywhere: a developer's shell may set GDCLOUD_ACTIVE_CONFIG_NAME.
        assert!(c.create("work", true).unwrap().is_some());
        c.set(Some("work"), "artifacts/registry", "w.example")
            .unwrap();
        let all = c.configurations(Some("work")).unwrap();
        let names: Vec<_> = all.iter().map(|l| (l.name.as_str(), l.is_active)).collect();
        assert_eq!(names, [("default", false), ("work", true)]);
        assert_eq!(
            all[1].properties["artifacts"]["registry"].as_deref(),
            Some("w.example")
        );
        // Active in active_config, or selected by the invocation: refused either way.
        assert!(matches!(
            c.delete(Some("default"), "work"),
            Err(Error::DeleteActive(_))
        ));
        assert!(matches!(
            c.delete(Some("default"), "default"),
            Err(Error::DeleteActive(_))
        ));
        c.activate("default").unwrap();
        c.delete(Some("default"), "work").unwrap();
        assert!(matches!(
            c.describe(Some("default"), "work"),
            Err(Error::NoSuchConfiguration(_))
        ));
    }
}
