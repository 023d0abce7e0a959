//! Registry logins in the system keyring ([`crate::credentials::keyring`]): one item per registry
//! key, its user the registry username, its secret the password or identity token.

use super::{CredentialStore, Listed, Result, StoreError};
use crate::credentials::keyring::{self, Item, Keyring, NewItem, REGISTRY};
use crate::credentials::Credentials;
use crate::secret::Secret;

const ATTR_USER: &str = "username";
const ATTR_URL: &str = "server_url";

pub struct KeyringStore {
    keyring: Keyring,
}

impl KeyringStore {
    pub(crate) fn new(keyring: Keyring) -> KeyringStore {
        KeyringStore { keyring }
    }

    fn find(&self, key: &str) -> Result<Vec<Item>> {
        self.keyring.find(&REGISTRY, Some(key))
    }
}

impl CredentialStore for KeyringStore {
    fn name(&self) -> &'static str {
        keyring::NAME
    }

    fn add(&self, key: &str, creds: &Credentials) -> Result<()> {
        let _lock = self.keyring.lock()?;
        for item in self.find(key)? {
            item.delete()?;
        }
        let label = format!("gdcloud registry credential for {} ({key})", creds.username);
        self.keyring.create(
            &REGISTRY,
            &NewItem {
                key,
                user: &creds.username,
                label: &label,
                attributes: &[(ATTR_URL, &creds.server_url)],
                secret: creds.secret.expose(),
            },
        )
    }

    fn delete(&self, key: &str) -> Result<()> {
        let _lock = self.keyring.lock()?;
        for item in self.find(key)? {
            item.delete()?;
        }
        Ok(())
    }

    /// Writers keep one item per server; should a foreign tool have added more, the first found
    /// answers.
    fn get(&self, key: &str) -> Result<Option<Credentials>> {
        let Some(item) = self.find(key)?.into_iter().next() else {
            return Ok(None);
        };
        let secret = String::from_utf8(item.secret()?).map_err(|_| {
            StoreError::SecretService(format!(
                "the secret stored for {key} is not UTF-8; log in again"
            ))
        })?;
        Ok(Some(Credentials {
            server_url: item.attribute(ATTR_URL).unwrap_or(key).to_string(),
            username: item.attribute(ATTR_USER).unwrap_or_default().to_string(),
            secret: Secret::new(secret),
        }))
    }

    fn list(&self) -> Result<Vec<Listed>> {
        let key_attribute = REGISTRY.key_attribute.unwrap_or_default();
        Ok(self
            .keyring
            .find(&REGISTRY, None)?
            .iter()
            .map(|item| Listed {
                server_url: item
                    .attribute(ATTR_URL)
                    .or_else(|| item.attribute(key_attribute))
                    .unwrap_or_default()
                    .to_string(),
                username: item.attribute(ATTR_USER).unwrap_or_default().to_string(),
            })
            .collect())
    }
}
