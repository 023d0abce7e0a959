//! The native stores of macOS (the login Keychain, `apple-native-keyring-store`) and Windows (the
//! Credential Manager, `windows-native-keyring-store`), as osxkeychain and wincred users have them.
//!
//! Neither store searches attributes of ours, so an item is one generic password per service
//! (`gdcloud-registry:<key>`, `gdcloud-sign-in`) under the fixed user `gdcloud`, and its password
//! is a JSON object holding the attributes and the secret. (Not compiled on the Linux build
//! machine, which has no macOS or Windows target: kept to what the two store crates document.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keyring_core::{CredentialStore as NativeStore, Entry};
use serde::{Deserialize, Serialize};

use super::{error, Item, Kind, NewItem};
use crate::credentials::store::{Result, StoreError};

#[cfg(target_os = "macos")]
pub(crate) const NAME: &str = "keychain";
#[cfg(windows)]
pub(crate) const NAME: &str = "wincred";
const USER: &str = "gdcloud";

#[derive(Serialize, Deserialize)]
struct Stored {
    attributes: HashMap<String, String>,
    secret: String,
}

pub(super) fn failure(message: String) -> StoreError {
    StoreError::Keychain(message)
}

/// The native store is part of the system: always there.
pub(super) fn is_running(_timeout: Duration) -> bool {
    true
}

pub(super) fn connect() -> Result<Arc<NativeStore>> {
    #[cfg(target_os = "macos")]
    let store = apple_native_keyring_store::keychain::Store::new();
    #[cfg(windows)]
    let store = windows_native_keyring_store::Store::new();
    let store: Arc<NativeStore> = store.map_err(error)?;
    Ok(store)
}

pub(super) fn find(store: &Arc<NativeStore>, kind: &Kind, key: Option<&str>) -> Result<Vec<Item>> {
    let entries = match (kind.key_attribute, key) {
        (Some(_), None) => all(store, kind)?,
        (_, key) => vec![
            Entry::new_in_store(store, &kind.service_for(key.unwrap_or("")), USER)
                .map_err(error)?,
        ],
    };
    let mut items = Vec::new();
    for entry in entries {
        let text = match entry.get_password() {
            Ok(text) => text,
            Err(keyring_core::Error::NoEntry) => continue,
            Err(e) => return Err(error(e)),
        };
        let stored: Stored = serde_json::from_str(&text).map_err(|_| {
            failure(format!(
                "the {} item of gdcloud is damaged; log in again",
                kind.service
            ))
        })?;
        items.push(Item {
            entry,
            attributes: stored.attributes,
            secret: Some(stored.secret),
        });
    }
    Ok(items)
}

pub(super) fn create(store: &Arc<NativeStore>, kind: &Kind, item: &NewItem) -> Result<()> {
    let service = kind.service_for(item.key);
    let mut attributes: HashMap<String, String> = item
        .attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    attributes.insert("service".into(), service.clone());
    attributes.insert("username".into(), item.user.into());
    attributes.insert("application".into(), "gdcloud".into());
    if let Some(attribute) = kind.key_attribute {
        attributes.insert(attribute.into(), item.key.into());
    }
    let stored = Stored {
        attributes,
        secret: item.secret.to_string(),
    };
    let text = serde_json::to_string(&stored).map_err(|e| failure(e.to_string()))?;
    Entry::new_in_store(store, &service, USER)
        .map_err(error)?
        .set_password(&text)
        .map_err(error)
}

/// Every item of a keyed kind: the generic passwords of user `gdcloud` whose service starts with
/// the kind's prefix.
#[cfg(target_os = "macos")]
fn all(store: &Arc<NativeStore>, kind: &Kind) -> Result<Vec<Entry>> {
    let found = Entry::search_in_store(store, &HashMap::from([("user", USER)])).map_err(error)?;
    Ok(found
        .into_iter()
        .filter(|e| {
            e.get_specifiers()
                .is_some_and(|(service, _)| service.starts_with(kind.service))
        })
        .collect())
}

/// Every item of a keyed kind: the generic credentials whose target name (`{user}.{service}` with
/// the store's default delimiters) starts with `gdcloud.` and the kind's prefix.
#[cfg(windows)]
fn all(store: &Arc<NativeStore>, kind: &Kind) -> Result<Vec<Entry>> {
    let escape = |s: &str| -> String {
        s.chars()
            .flat_map(|c| match c.is_ascii_punctuation() {
                true => vec!['\\', c],
                false => vec![c],
            })
            .collect()
    };
    let pattern = format!("^{}\\.{}", escape(USER), escape(kind.service));
    Entry::search_in_store(store, &HashMap::from([("pattern", pattern.as_str())])).map_err(error)
}
