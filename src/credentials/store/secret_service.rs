//! Credentials in the desktop keyring through the freedesktop Secret Service (gnome-keyring,
//! KeePassXC), over `dbus-secret-service`, the transport the `keyring` crate uses on Linux.
//!
//! We talk to it directly rather than through `keyring::Entry` because the helper protocol needs two
//! searches `keyring`'s service+user model cannot express: `get` by server alone (the user is what
//! we are asked for) and `list` of every entry of ours.
//!
//! Never a prompt, never a hang: a locked collection is an error (prompt timeout 0), and the `auto`
//! choice in [`crate::credentials::open_store`] probes the bus with a short timeout before using this.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use dbus_secret_service::{EncryptionType, Error as SsError, Item, SecretService};

use super::{CredentialStore, Listed, Result, StoreError};
use crate::atomic;
use crate::credentials::Credentials;
use crate::secret::Secret;

const SCHEMA: &str = "com.google.gdcloud.RegistryCredential";
const ATTR_SCHEMA: &str = "xdg:schema";
const ATTR_APP: &str = "application";
const ATTR_SERVER: &str = "server";
const ATTR_USER: &str = "username";
const ATTR_URL: &str = "server_url";
const SECRETS_BUS_NAME: &str = "org.freedesktop.secrets";

pub struct SecretServiceStore {
    ss: SecretService,
    /// Serialises writers across processes (the Secret Service has no transactions): the same
    /// directory lock the file store and configuration use.
    lock_dir: PathBuf,
}

fn ss_err(e: SsError) -> StoreError {
    match e {
        SsError::Locked | SsError::Prompt => StoreError::Locked,
        SsError::Unavailable => StoreError::Unavailable,
        other => StoreError::SecretService(other.to_string()),
    }
}

/// Where the session bus is, without letting libdbus autolaunch one (which can spawn X11 helpers or
/// block): `DBUS_SESSION_BUS_ADDRESS`, else the systemd-style `$XDG_RUNTIME_DIR/bus` socket.
pub fn session_bus_address() -> Option<String> {
    if let Some(addr) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
    {
        return Some(addr);
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")?;
    let socket = PathBuf::from(runtime).join("bus");
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::metadata(&socket)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false);
    is_socket.then(|| format!("unix:path={}", socket.display()))
}

/// Whether a Secret Service is running now, asked without activating one (activation can start a
/// daemon with a locked keyring and a prompt).
pub fn is_running(timeout: Duration) -> bool {
    let Some(addr) = session_bus_address() else {
        return false;
    };
    let Ok(mut channel) = dbus::channel::Channel::open_private(&addr) else {
        return false;
    };
    if channel.register().is_err() {
        return false;
    }
    let conn = dbus::blocking::Connection::from(channel);
    let proxy = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", timeout);
    let owned: std::result::Result<(bool,), _> =
        proxy.method_call("org.freedesktop.DBus", "NameHasOwner", (SECRETS_BUS_NAME,));
    matches!(owned, Ok((true,)))
}

impl SecretServiceStore {
    /// Connects and checks that the default collection exists and is unlocked.
    pub fn connect(lock_dir: PathBuf) -> Result<SecretServiceStore> {
        let addr = session_bus_address().ok_or(StoreError::Unavailable)?;
        // libdbus reads the address from the environment; make the one we resolved explicit.
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &addr);
        }
        let ss = SecretService::connect_with_max_prompt_timeout(EncryptionType::Plain, 0).map_err(
            |e| match e {
                SsError::Dbus(_) | SsError::Unavailable => StoreError::Unavailable,
                other => ss_err(other),
            },
        )?;
        let store = SecretServiceStore { ss, lock_dir };
        if store.default_collection_locked()? {
            return Err(StoreError::Locked);
        }
        Ok(store)
    }

    fn default_collection_locked(&self) -> Result<bool> {
        let collection = self.ss.get_default_collection().map_err(|e| match e {
            SsError::NoResult => StoreError::SecretService(
                "no default keyring collection; create one (e.g. `gnome-keyring-daemon --unlock` with a password on stdin)".into(),
            ),
            other => ss_err(other),
        })?;
        collection.is_locked().map_err(ss_err)
    }

    fn find(&self, key: &str) -> Result<Vec<Item<'_>>> {
        let attrs = HashMap::from([(ATTR_SCHEMA, SCHEMA), (ATTR_SERVER, key)]);
        let found = self.ss.search_items(attrs).map_err(ss_err)?;
        if !found.locked.is_empty() && found.unlocked.is_empty() {
            return Err(StoreError::Locked);
        }
        Ok(found.unlocked)
    }

    fn lock(&self) -> Result<atomic::DirLock> {
        atomic::DirLock::acquire(&self.lock_dir).map_err(|source| StoreError::Io {
            action: "lock",
            path: self.lock_dir.clone(),
            source,
        })
    }
}

impl CredentialStore for SecretServiceStore {
    fn name(&self) -> &'static str {
        "secret-service"
    }

    fn add(&self, key: &str, creds: &Credentials) -> Result<()> {
        let _lock = self.lock()?;
        for item in self.find(key)? {
            item.delete().map_err(ss_err)?;
        }
        let collection = self.ss.get_default_collection().map_err(ss_err)?;
        let attrs = HashMap::from([
            (ATTR_SCHEMA, SCHEMA),
            (ATTR_APP, "gdcloud"),
            (ATTR_SERVER, key),
            (ATTR_USER, creds.username.as_str()),
            (ATTR_URL, creds.server_url.as_str()),
        ]);
        let label = format!("gdcloud registry credential for {} ({key})", creds.username);
        collection
            .create_item(
                &label,
                attrs,
                creds.secret.expose().as_bytes(),
                true,
                "text/plain",
            )
            .map_err(ss_err)?;
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let _lock = self.lock()?;
        for item in self.find(key)? {
            item.delete().map_err(ss_err)?;
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Credentials>> {
        let items = self.find(key)?;
        // Writers keep one item per server; should a foreign tool have added more, the newest wins.
        let newest = items.iter().max_by_key(|i| i.get_modified().unwrap_or(0));
        let Some(item) = newest else {
            return Ok(None);
        };
        let attrs = item.get_attributes().map_err(ss_err)?;
        let secret = item.get_secret().map_err(ss_err)?;
        let secret = String::from_utf8(secret).map_err(|_| {
            StoreError::SecretService(format!(
                "the secret stored for {key} is not UTF-8; log in again"
            ))
        })?;
        Ok(Some(Credentials {
            server_url: attrs
                .get(ATTR_URL)
                .cloned()
                .unwrap_or_else(|| key.to_string()),
            username: attrs.get(ATTR_USER).cloned().unwrap_or_default(),
            secret: Secret::new(secret),
        }))
    }

    fn list(&self) -> Result<Vec<Listed>> {
        let attrs = HashMap::from([(ATTR_SCHEMA, SCHEMA)]);
        let found = self.ss.search_items(attrs).map_err(ss_err)?;
        let mut out = Vec::new();
        for item in found.unlocked.iter().chain(found.locked.iter()) {
            // Attributes are readable on locked items too: listing never needs an unlock.
            let attrs = item.get_attributes().map_err(ss_err)?;
            let server_url = attrs
                .get(ATTR_URL)
                .or_else(|| attrs.get(ATTR_SERVER))
                .cloned()
                .unwrap_or_default();
            out.push(Listed {
                server_url,
                username: attrs.get(ATTR_USER).cloned().unwrap_or_default(),
            });
        }
        Ok(out)
    }
}
