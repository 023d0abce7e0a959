//! `gdcloud artifacts list-versions REPOSITORY`: the tags of a repository, newest first — what the
//! runbook's method 2 does by hand with `curl | jq` against Harbor.
//!
//! Against Harbor the order is each tag's `push_time` from its REST API; against any other registry
//! it is the image config's `created` (the tags list has no dates). Cosign's signature, attestation
//! and SBOM tags are left out unless asked for.

use futures_util::{stream, StreamExt};
use serde::Serialize;

use crate::oci::{self, AnyManifest, ImageConfig};
use crate::registry::{harbor, Client, ClientOptions, Reference};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] crate::registry::reference::ReferenceError),
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    #[error("{0} has no tags")]
    NoTags(String),
    #[error("REPOSITORY takes no tag or digest ({0}); name the repository only, e.g. harbor.example.com/project/app")]
    TagGiven(String),
    #[error("{0} names no Harbor project: Harbor repositories are HOST/PROJECT/REPO")]
    NoProject(String),
    #[error(transparent)]
    Cluster(#[from] super::discovery::Error),
    #[error("{0} is not a Harbor registry (no /api/v2.0/ping); drop --api harbor to use the registry's tag list")]
    NotHarbor(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// Harbor's API when the registry answers as Harbor, else the distribution tag list.
    #[default]
    Auto,
    Harbor,
    Registry,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub repository: String,
    pub default_registry: Option<String>,
    pub include_signatures: bool,
    pub api: Api,
    pub client: ClientOptions,
    /// Read Harbor's admin login from this cluster (secret `harbor-admin`) instead of using the
    /// registry login for Harbor's API: the runbook's method 2 without the curl.
    pub harbor_admin_from: Option<crate::kube::Options>,
}

/// Manifests (and configs) fetched at once for the creation dates of a plain registry's tags.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Version {
    pub tag: String,
    pub digest: String,
    /// Harbor: when the tag was pushed; otherwise when the image was built (config `created`).
    pub time: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub repository: String,
    /// `harbor` or `registry`: where the order comes from.
    pub source: &'static str,
    pub versions: Vec<Version>,
}

/// Cosign's `sha256-<hex>.sig` / `.att` / `.sbom` tags.
pub fn is_signature_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, suffix)) = rest.split_once('.') else {
        return false;
    };
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(suffix, "sig" | "att" | "sbom")
}

pub async fn run(opts: &Options) -> Result<Listing, Error> {
    let reference = Reference::parse_argument(&opts.repository, opts.default_registry.as_deref())?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(Error::TagGiven(opts.repository.clone()));
    }
    let client = Client::connect_for(&reference, &opts.client).await?;
    let use_harbor = match opts.api {
        Api::Registry => false,
        Api::Harbor => {
            if reference.harbor_project().is_none() {
                return Err(Error::NoProject(opts.repository.clone()));
            }
            if !harbor::is_harbor(&client).await {
                return Err(Error::NotHarbor(reference.registry.clone()));
            }
            true
        }
        Api::Auto => reference.harbor_project().is_some() && harbor::is_harbor(&client).await,
    };
    let name = format!("{}/{}", reference.registry, reference.repository);
    let mut versions = if use_harbor {
        let (project, repo) = reference.harbor_project().expect("checked above");
        let creds = match &opts.harbor_admin_from {
            Some(cluster) => {
                let cluster = crate::kube::connect(cluster)
                    .await
                    .map_err(super::discovery::Error::from)?;
                super::discovery::harbor_admin(&cluster).await?
            }
            None => client.credentials().clone(),
        };
        harbor::tags(&client, &creds, project, repo)
            .await?
            .into_iter()
            .map(|t| Version {
                tag: t.name,
                digest: t.digest,
                time: Some(t.push_time).filter(|s| !s.is_empty()),
            })
            .collect()
    } else {
        registry_versions(&client, &reference.repository, opts).await?
    };
    if !opts.include_signatures {
        versions.retain(|v| !is_signature_tag(&v.tag));
    }
    if versions.is_empty() {
        return Err(Error::NoTags(name));
    }
    Ok(Listing {
        repository: name,
        source: if use_harbor { "harbor" } else { "registry" },
        versions,
    })
}

/// Tags from `/v2/<name>/tags/list`, each dated by its image config's `created`.
async fn registry_versions(
    client: &Client,
    repo: &str,
    opts: &Options,
) -> Result<Vec<Version>, Error> {
    let tags: Vec<String> = client
        .tags(repo)
        .await?
        .into_iter()
        .filter(|t| opts.include_signatures || !is_signature_tag(t))
        .collect();
    let results: Vec<Result<Version, Error>> = stream::iter(tags)
        .map(|tag| async move {
            let fetched = client.get_manifest(repo, &tag).await?;
            let created = created_of(client, repo, &fetched).await?;
            Ok(Version {
                tag,
                digest: fetched.digest.to_string(),
                time: created,
            })
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut versions = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    // Newest first; undated last. Tags of one image share its time: a version comes before
    // `latest` and other names, so `--latest` prints something to pin (issue 10); then by tag
    // name, highest first, so the order is stable.
    versions.sort_by(|a, b| {
        crate::rfc3339::newest_first(a.time.as_deref(), b.time.as_deref())
            .then_with(|| looks_like_version(&b.tag).cmp(&looks_like_version(&a.tag)))
            .then_with(|| b.tag.cmp(&a.tag))
    });
    Ok(versions)
}

/// Whether `tag` reads as a version (`19c`, `1.2.3`, `v2`), not a moving name (`latest`,
/// `stable`, `main`).
pub fn looks_like_version(tag: &str) -> bool {
    let digits = tag
        .strip_prefix(['v', 'V'])
        .filter(|rest| !rest.is_empty())
        .unwrap_or(tag);
    digits.starts_with(|c: char| c.is_ascii_digit())
}

/// The tags that share the newest time with the first version, the first included; empty when
/// the newest time is unknown or held by one tag alone. `--latest` says so on stderr.
pub fn tied_for_latest(listing: &Listing) -> Vec<String> {
    let Some(first) = listing.versions.first() else {
        return Vec::new();
    };
    let Some(newest) = first.time.as_deref() else {
        return Vec::new();
    };
    let tied: Vec<String> = listing
        .versions
        .iter()
        .take_while(|v| {
            v.time
                .as_deref()
                .is_some_and(|t| crate::rfc3339::newest_first(Some(t), Some(newest)).is_eq())
        })
        .map(|v| v.tag.clone())
        .collect();
    if tied.len() > 1 {
        tied
    } else {
        Vec::new()
    }
}

/// The `created` time of an image; for an index, of its first linux/amd64 (else first) image.
async fn created_of(
    client: &Client,
    repo: &str,
    fetched: &crate::registry::Fetched,
) -> Result<Option<String>, Error> {
    let manifest = match oci::AnyManifest::parse(Some(&fetched.media_type), &fetched.bytes)
        .map_err(crate::registry::Error::from)?
    {
        AnyManifest::Image(m) => *m,
        AnyManifest::Index(i) => {
            let child = i
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
                })
                .or_else(|| i.manifests.first());
            let Some(child) = child else { return Ok(None) };
            let f = client.get_manifest(repo, &child.digest.to_string()).await?;
            match oci::AnyManifest::parse(Some(&f.media_type), &f.bytes)
                .map_err(crate::registry::Error::from)?
            {
                AnyManifest::Image(m) => *m,
                AnyManifest::Index(_) => return Ok(None),
            }
        }
    };
    if manifest.config.media_type != oci::OCI_CONFIG
        && manifest.config.media_type != oci::DOCKER_CONFIG
    {
        return Ok(None);
    }
    let bytes = client.get_small_blob(repo, &manifest.config).await?;
    Ok(serde_json::from_slice::<ImageConfig>(&bytes)
        .ok()
        .and_then(|c| c.created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_tags() {
        let hex = "a".repeat(64);
        assert!(is_signature_tag(&format!("sha256-{hex}.sig")));
        assert!(is_signature_tag(&format!("sha256-{hex}.att")));
        assert!(!is_signature_tag("v1.sig"));
        assert!(!is_signature_tag(&format!("sha256-{hex}")));
        assert!(!is_signature_tag("1.0"));
    }

    fn listing(versions: &[(&str, Option<&str>)]) -> Listing {
        Listing {
            repository: "h.io/p/r".into(),
            source: "registry",
            versions: versions
                .iter()
                .map(|(tag, time)| Version {
                    tag: tag.to_string(),
                    digest: "sha256:x".into(),
                    time: time.map(str::to_string),
                })
                .collect(),
        }
    }

    #[test]
    fn versions_and_names() {
        for v in ["19c", "1.2.3", "v2", "V10", "2026.01"] {
            assert!(looks_like_version(v), "{v}");
        }
        for n in ["latest", "stable", "main", "v", "vnext", ""] {
            assert!(!looks_like_version(n), "{n}");
        }
    }

    #[test]
    fn ties_for_latest() {
        let t = Some("2026-01-02T00:00:00Z");
        let same = Some("2026-01-02T01:00:00+01:00");
        let old = Some("2026-01-01T00:00:00Z");
        let l = listing(&[("19c", t), ("latest", same), ("18c", old)]);
        assert_eq!(tied_for_latest(&l), ["19c", "latest"]);
        assert!(tied_for_latest(&listing(&[("19c", t), ("18c", old)])).is_empty());
        assert!(tied_for_latest(&listing(&[("a", None), ("b", None)])).is_empty());
        assert!(tied_for_latest(&listing(&[])).is_empty());
    }
}
