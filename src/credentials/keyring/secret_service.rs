//! The freedesktop Secret Service (gnome-keyring, KeePassXC) through
//! `dbus-secret-service-keyring-store`, over libdbus (vendored).
//!
//! Items keep gdcloud's own attributes (`xdg:schema`, `application`, `server`, `username`,
//! `server_url`; the session's `issuer` and `account`) beside the `service` and `username` the
//! store crate sets, and searches ask for the schema and key only, so items written before the
//! move to keyring-core (which have no `service`) are found, listed and replaced like new ones.
//!
//! Never a prompt, never a hang: the store crate unlocks what it finds and waits on prompts without
//! a timeout, so before it is used we ask the bus ourselves (with the `dbus` crate, which the store
//! crate runs on anyway) whether a Secret Service runs and whether its default collection, where
//! every item of ours is created, is unlocked; a locked one is an error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;
use keyring_core::{CredentialStore as NativeStore, Entry};

use super::{error, Item, Kind, NewItem};
use crate::credentials::store::{Result, StoreError};

pub(crate) const NAME: &str = "secret-service";
const SECRETS_BUS_NAME: &str = "org.freedesktop.secrets";
const SECRETS_PATH: &str = "/org/freedesktop/secrets";
/// For the two questions asked before connecting (answered at once by a running service).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn failure(message: String) -> StoreError {
    StoreError::SecretService(message)
}

/// Where the session bus is, without letting libdbus autolaunch one (which can spawn X11 helpers or
/// block): `DBUS_SESSION_BUS_ADDRESS`, else the systemd-style `$XDG_RUNTIME_DIR/bus` socket.
fn session_bus_address() -> Option<String> {
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

/// A private connection to the session bus at `addr`.
fn bus(addr: &str) -> Option<dbus::blocking::Connection> {
    let mut channel = dbus::channel::Channel::open_private(addr).ok()?;
    channel.register().ok()?;
    Some(dbus::blocking::Connection::from(channel))
}

/// Whether a Secret Service is running now, asked without activating one (activation can start a
/// daemon with a locked keyring and a prompt).
pub(super) fn is_running(timeout: Duration) -> bool {
    let Some(conn) = session_bus_address().and_then(|addr| bus(&addr)) else {
        return false;
    };
    let proxy = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", timeout);
    let owned: std::result::Result<(bool,), _> =
        proxy.method_call("org.freedesktop.DBus", "NameHasOwner", (SECRETS_BUS_NAME,));
    matches!(owned, Ok((true,)))
}

/// Connects, after checking that the default collection exists and is unlocked.
pub(super) fn connect() -> Result<Arc<NativeStore>> {
    let addr = session_bus_address().ok_or(StoreError::Unavailable)?;
    // libdbus (in the store crate) reads the address from the environment; make the one we
    // resolved explicit.
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &addr);
    }
    let conn = bus(&addr).ok_or(StoreError::Unavailable)?;
    if default_collection_locked(&conn)? {
        return Err(StoreError::Locked);
    }
    let store = dbus_secret_service_keyring_store::Store::new().map_err(|e| match e {
        keyring_core::Error::PlatformFailure(_) => StoreError::Unavailable,
        other => error(other),
    })?;
    Ok(store)
}

fn default_collection_locked(conn: &dbus::blocking::Connection) -> Result<bool> {
    let call_error = |e: dbus::Error| match e.name() {
        Some("org.freedesktop.DBus.Error.ServiceUnknown")
        | Some("org.freedesktop.DBus.Error.NameHasNoOwner") => StoreError::Unavailable,
        _ => failure(e.to_string()),
    };
    let service = conn.with_proxy(SECRETS_BUS_NAME, SECRETS_PATH, CALL_TIMEOUT);
    let (path,): (dbus::Path<'static>,) = service
        .method_call("org.freedesktop.Secret.Service", "ReadAlias", ("default",))
        .map_err(call_error)?;
    if &*path == "/" {
        return Err(failure(
            "no default keyring collection; create one (e.g. `gnome-keyring-daemon --unlock` with a password on stdin)".into(),
        ));
    }
    let collection = conn.with_proxy(SECRETS_BUS_NAME, path, CALL_TIMEOUT);
    collection
        .get("org.freedesktop.Secret.Collection", "Locked")
        .map_err(call_error)
}

pub(super) fn find(store: &Arc<NativeStore>, kind: &Kind, key: Option<&str>) -> Result<Vec<Item>> {
    let mut spec = HashMap::from([("xdg:schema", kind.schema)]);
    if let (Some(attribute), Some(key)) = (kind.key_attribute, key) {
        spec.insert(attribute, key);
    }
    let mut items = Vec::new();
    for entry in Entry::search_in_store(store, &spec).map_err(error)? {
        let attributes = entry.get_attributes().map_err(error)?;
        items.push(Item {
            entry,
            attributes,
            secret: None,
        });
    }
    Ok(items)
}

/// Creates the item in the default collection: the store crate sets `service`, `username` and the
/// label; gdcloud's attributes are added to it at once.
pub(super) fn create(store: &Arc<NativeStore>, kind: &Kind, item: &NewItem) -> Result<()> {
    let service = kind.service_for(item.key);
    let label = HashMap::from([("label", item.label)]);
    let entry =
        Entry::new_in_store_with_modifiers(store, &service, item.user, &label).map_err(error)?;
    entry.set_secret(item.secret.as_bytes()).map_err(error)?;
    let mut attributes = HashMap::from([("xdg:schema", kind.schema), ("application", "gdcloud")]);
    if let Some(attribute) = kind.key_attribute {
        attributes.insert(attribute, item.key);
    }
    attributes.extend(item.attributes.iter().copied());
    entry.update_attributes(&attributes).map_err(error)
}
