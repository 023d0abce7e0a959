//! The properties our tools read, in one table: `gdcloud-config set/get/unset` accept only these, so a
//! typo (`storage/s3_endpiont`) is an error naming the closest property instead of a setting nothing
//! ever reads. Each entry is one of the `*_PROPERTY` constants the reading code uses (a test keeps the
//! two in step) with the one line `list --all` shows.

use super::{Error, Property, Result};

/// `storage/s3_addressing_style` (spelled here too: the S3 code is not in the credential helper's
/// build, this table is).
const ADDRESSING_PROPERTY: &str = "storage/s3_addressing_style";

/// One property we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// `section/key`.
    pub name: &'static str,
    /// What it changes, one line.
    pub description: &'static str,
    /// Its value is a credential: `list` masks it unless asked.
    pub secret: bool,
}

const fn known(name: &'static str, description: &'static str) -> Known {
    Known {
        name,
        description,
        secret: false,
    }
}

/// Every property, sorted by name (`list --all` shows them in this order).
pub const KNOWN: &[Known] = &[
    known(
        "artifacts/registry",
        "Registry host for references without one (configure-docker records the cluster's).",
    ),
    known(
        "auth/client_id",
        "OpenID Connect client ID used by `auth login`.",
    ),
    known(
        "auth/credential_store",
        "Where registry credentials are kept: auto, secret-service (keychain, wincred) or file.",
    ),
    known(
        "auth/helper_log",
        "File the credential helper appends one line per call to (no secrets).",
    ),
    known(
        "auth/issuer_url",
        "OpenID Connect issuer URL of the organisation's identity provider.",
    ),
    known(
        "auth/login_config_cert_path",
        "CA certificate (PEM) trusted for the identity provider.",
    ),
    known(
        "auth/registry_audiences",
        "HOST=AUDIENCE pairs, comma-separated: registries that take identity tokens.",
    ),
    known(
        "auth/scopes",
        "OpenID Connect scopes requested at sign-in (default: openid offline_access email).",
    ),
    known(
        "storage/s3_access_key_id",
        "S3 access key ID of the bucket key.",
    ),
    known(
        "storage/s3_addressing_style",
        "Where the bucket goes in S3 URLs: path (default, endpoint/BUCKET/KEY), virtual (BUCKET.endpoint/KEY) or auto.",
    ),
    known(
        "storage/s3_custom_ca_certs_file",
        "CA certificate (PEM) trusted for the S3 endpoint.",
    ),
    known("storage/s3_endpoint", "S3 endpoint URL."),
    known(
        "storage/s3_region",
        "Region S3 requests are signed for (default us-east-1; learned from the endpoint when it names another).",
    ),
    Known {
        name: "storage/s3_secret_access_key",
        description: "S3 secret access key of the bucket key (masked by `list`).",
        secret: true,
    },
];

/// The table entry for `property`, if we read it.
pub fn lookup(property: &Property) -> Option<&'static Known> {
    let name = property.to_string();
    KNOWN.iter().find(|k| k.name == name)
}

/// The table entry for the property `name` (`section/key`, or a bare key meaning `core/key`), or the
/// error that names the closest property.
pub fn resolve(name: &str) -> Result<&'static Known> {
    let property = Property::parse(name)?;
    lookup(&property).ok_or_else(|| Error::UnknownProperty {
        name: name.to_string(),
        closest: closest(name),
    })
}

/// Checks a value before it is written: one line, and one of the choices where there are choices.
pub fn check_value(known: &Known, value: &str) -> Result<()> {
    if value.contains(['\n', '\r']) {
        return Err(Error::InvalidValue(known.name.to_string()));
    }
    if known.name == ADDRESSING_PROPERTY && !matches!(value, "path" | "virtual" | "auto") {
        return Err(Error::BadValue {
            property: known.name,
            reason: format!("{value:?} is not an addressing style: use path, virtual or auto"),
        });
    }
    if known.name == crate::credentials::STORE_PROPERTY {
        crate::credentials::StoreKind::parse(Some(value)).map_err(|_| Error::BadValue {
            property: known.name,
            reason: format!(
                "{value:?} is not a store: use auto, {} or file",
                crate::credentials::keyring::NAME
            ),
        })?;
    }
    Ok(())
}

/// The known property nearest to `name` by edit distance, comparing the whole name and, for a bare
/// or misplaced key, the key alone (`registry` → `artifacts/registry`).
pub fn closest(name: &str) -> &'static str {
    let key = name.rsplit('/').next().unwrap_or(name);
    KNOWN
        .iter()
        .min_by_key(|k| {
            let own_key = k.name.rsplit('/').next().unwrap_or(k.name);
            distance(name, k.name).min(distance(key, own_key))
        })
        .map(|k| k.name)
        .expect("the table is not empty")
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_parses() {
        for pair in KNOWN.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for k in KNOWN {
            assert_eq!(Property::parse(k.name).unwrap().to_string(), k.name);
            assert!(!k.description.is_empty() && !k.description.contains('\n'));
        }
        assert_eq!(
            KNOWN
                .iter()
                .filter(|k| k.secret)
                .map(|k| k.name)
                .collect::<Vec<_>>(),
            ["storage/s3_secret_access_key"]
        );
    }

    /// Every property a reader names is in the table, so `set` accepts what our tools read.
    #[test]
    fn every_property_constant_is_known() {
        let mut constants = vec![
            crate::credentials::STORE_PROPERTY,
            crate::credentials::log::LOG_PROPERTY,
            crate::oidc::ISSUER_PROPERTY,
            crate::oidc::CLIENT_ID_PROPERTY,
            crate::oidc::SCOPES_PROPERTY,
            crate::oidc::CERT_PROPERTY,
            crate::oidc::AUDIENCES_PROPERTY,
        ];
        #[cfg(feature = "net")]
        constants.extend([
            crate::ops::discovery::REGISTRY_PROPERTY,
            crate::ops::storage_config::ACCESS_KEY_PROPERTY,
            crate::ops::storage_config::SECRET_KEY_PROPERTY,
            crate::ops::storage_config::ENDPOINT_PROPERTY,
            crate::ops::storage_config::CA_PROPERTY,
            crate::ops::storage_config::REGION_PROPERTY,
            crate::ops::storage_config::ADDRESSING_PROPERTY,
        ]);
        #[cfg(feature = "net")]
        assert_eq!(
            ADDRESSING_PROPERTY,
            crate::ops::storage_config::ADDRESSING_PROPERTY
        );
        for c in constants {
            assert!(resolve(c).is_ok(), "{c} is read but not in KNOWN");
        }
    }

    #[test]
    fn unknown_names_point_to_the_closest() {
        for (typo, want) in [
            ("storage/s3_endpiont", "storage/s3_endpoint"),
            ("registry", "artifacts/registry"),
            ("artifact/registry", "artifacts/registry"),
            ("auth/issuer", "auth/issuer_url"),
            ("storage/secret_access_key", "storage/s3_secret_access_key"),
        ] {
            match resolve(typo) {
                Err(Error::UnknownProperty { closest, .. }) => assert_eq!(closest, want, "{typo}"),
                other => panic!("{typo}: {other:?}"),
            }
        }
        assert!(matches!(resolve("a/b/c"), Err(Error::InvalidProperty(_))));
        let e = resolve("storage/s3_endpiont").unwrap_err().to_string();
        assert!(
            e.contains("storage/s3_endpiont") && e.contains("storage/s3_endpoint"),
            "{e}"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn values_are_checked() {
        let store = resolve("auth/credential_store").unwrap();
        assert!(check_value(store, "file").is_ok());
        assert!(check_value(store, "auto").is_ok());
        let e = check_value(store, "filez").unwrap_err().to_string();
        assert!(
            e.contains("auth/credential_store") && e.contains("file"),
            "{e}"
        );
        let endpoint = resolve("storage/s3_endpoint").unwrap();
        assert!(check_value(endpoint, "https://x\nfoo = bar").is_err());
        assert!(check_value(endpoint, "https://x").is_ok());
        let style = resolve("storage/s3_addressing_style").unwrap();
        assert!(check_value(style, "virtual").is_ok());
        let e = check_value(style, "vhost").unwrap_err().to_string();
        assert!(e.contains("path, virtual or auto"), "{e}");
    }
}
