//! The stores one helper call asks, in order, as one [`CredentialStore`]: first read-only stores
//! that own some keys (the token path of [`crate::oidc::helper`], for registries with an audience),
//! then the store `auth/credential_store` selects, then (with `auto` and a keyring in use) the file
//! store, so entries written while no keyring was running are still found and `docker logout`
//! removes them wherever they are.
//!
//! The selected stores are opened on first use: a `get` the token path answers never probes the
//! session bus or connects to a keyring (the helper's `get` must stay within 1 ms of `/bin/true`).

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use super::keyring;
use super::store::file::FileStore;
use super::store::keyring::KeyringStore;
use super::{CredentialStore, Credentials, Listed, StoreError, StoreKind};

pub struct Chain {
    readers: Vec<Box<dyn CredentialStore>>,
    /// `auth/credential_store` as configured, and the configuration directory.
    selection: Option<String>,
    dir: PathBuf,
    /// The selected store, then its fallback; never empty once opened (the first takes writes).
    stores: OnceCell<Vec<Box<dyn CredentialStore>>>,
}

impl Chain {
    /// The chain of `auth/credential_store` (`selection`) for the configuration directory `dir`.
    pub(crate) fn new(selection: Option<String>, dir: PathBuf) -> Chain {
        Chain {
            readers: Vec::new(),
            selection,
            dir,
            stores: OnceCell::new(),
        }
    }

    /// Puts `store`, which answers `get` only for the keys it owns, before every store so far.
    pub fn read_first(mut self, store: Box<dyn CredentialStore>) -> Chain {
        self.readers.insert(0, store);
        self
    }

    fn stores(&self) -> &[Box<dyn CredentialStore>] {
        self.stores.get_or_init(|| {
            open(self.selection.as_deref(), &self.dir).unwrap_or_else(|e| {
                vec![Box::new(Unopened {
                    reason: e.to_string(),
                })]
            })
        })
    }

    fn reader_for(&self, key: &str) -> Option<&dyn CredentialStore> {
        self.readers.iter().find(|r| r.owns(key)).map(|r| &**r)
    }
}

/// Opens the store `selection` names; with `auto` and a keyring, the file store follows it.
fn open(selection: Option<&str>, dir: &Path) -> Result<Vec<Box<dyn CredentialStore>>, StoreError> {
    let kind = StoreKind::parse(selection)?;
    let file = Box::new(FileStore::new(dir));
    Ok(match keyring::selected(kind, dir.to_path_buf())? {
        Some(k) if kind == StoreKind::Auto => vec![Box::new(KeyringStore::new(k)), file],
        Some(k) => vec![Box::new(KeyringStore::new(k))],
        None => vec![file],
    })
}

impl CredentialStore for Chain {
    fn name(&self) -> &'static str {
        self.stores()[0].name()
    }

    fn name_for(&self, key: &str) -> &'static str {
        match self.reader_for(key) {
            Some(reader) => reader.name(),
            None => self.name(),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Credentials>, StoreError> {
        if let Some(reader) = self.reader_for(key) {
            if let Some(found) = reader.get(key)? {
                return Ok(Some(found));
            }
        }
        for store in self.stores() {
            if let Some(found) = store.get(key)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn add(&self, key: &str, creds: &Credentials) -> Result<(), StoreError> {
        self.stores()[0].add(key, creds)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.stores().iter().try_for_each(|s| s.delete(key))
    }

    fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut all = Vec::new();
        for store in self.stores() {
            all.extend(store.list()?);
        }
        Ok(all)
    }
}

/// The selected store when it could not be opened: every call fails with the reason, named `-` in
/// the log. (A `get` the token path answers never gets here.)
struct Unopened {
    reason: String,
}

impl Unopened {
    fn fail<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::Unopened(self.reason.clone()))
    }
}

impl CredentialStore for Unopened {
    fn name(&self) -> &'static str {
        "-"
    }
    fn add(&self, _key: &str, _creds: &Credentials) -> Result<(), StoreError> {
        self.fail()
    }
    fn delete(&self, _key: &str) -> Result<(), StoreError> {
        self.fail()
    }
    fn get(&self, _key: &str) -> Result<Option<Credentials>, StoreError> {
        self.fail()
    }
    fn list(&self) -> Result<Vec<Listed>, StoreError> {
        self.fail()
    }
}
