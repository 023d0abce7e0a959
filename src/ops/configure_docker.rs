//! `gdcloud auth configure-docker`: point Docker (and optionally podman, buildah, skopeo) at
//! `docker-credential-gdcloud` for the organisation's registries, and install the registry CA.
//!
//! All files are planned first and written only when every plan succeeded, so a refusal (another
//! helper without `--overwrite`, malformed JSON) leaves everything as it was.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::certs;
use crate::config::Config;
use crate::docker_config::{self, JsonFile};
use crate::host;

/// The helper name in `credHelpers` (Docker runs `docker-credential-<name>`).
pub const HELPER_NAME: &str = "gdcloud";
pub use super::discovery::REGISTRY_PROPERTY;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no registry to configure: pass --registries HOST[,HOST…] or run `gdcloud config set {REGISTRY_PROPERTY} HOST`")]
    NoRegistry,
    #[error("invalid registry {0:?}: use a host name such as harbor.example.com[:PORT]")]
    InvalidRegistry(String),
    #[error("{path}: credHelpers[{host:?}] is {existing:?}, not {HELPER_NAME:?}; rerun with --overwrite to replace it (nothing was changed)")]
    OtherHelper {
        path: PathBuf,
        host: String,
        existing: String,
    },
    #[error("--config-cert needs --ca-cert-path FILE (the registry's CA certificate in PEM form)")]
    NoCaFile,
    #[error("--ca-cert-path installs a CA only together with --config-cert; add --config-cert")]
    CaFileWithoutConfigCert,
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    DockerConfig(#[from] docker_config::Error),
    #[error(transparent)]
    Certs(#[from] certs::Error),
    #[error("no --registries and no {REGISTRY_PROPERTY}, and the cluster's registry could not be found: {0}")]
    Discovery(Box<super::discovery::Error>),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Hosts named on the command line; empty means the configured default.
    pub registries: Vec<String>,
    pub overwrite: bool,
    pub dry_run: bool,
    pub remove_stale_auths: bool,
    /// Also write the containers auth file (podman, buildah, skopeo).
    pub containers: bool,
    pub config_cert: bool,
    pub ca_cert_path: Option<PathBuf>,
    /// The token audience these registries accept (recorded in `auth/registry_audiences`), so the
    /// helper answers with a token from the gdcloud sign-in.
    pub audience: Option<String>,
    /// The cluster that names the registry when neither `registries` nor the property does (the
    /// runbook's HarborCluster, else `harbor.<dnsSuffix>`).
    pub cluster: crate::kube::Options,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    AddHelper { host: String },
    ReplaceHelper { host: String, previous: String },
    RemoveAuth { host: String, key: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub changes: Vec<Change>,
    pub written: bool,
    pub backup: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "warning", rename_all = "kebab-case")]
pub enum Warning {
    /// Docker will fail to run the helper.
    HelperNotOnPath,
    /// An `auths` entry for a configured host: tools that read `auths` first would use it instead.
    ShadowingAuth {
        path: PathBuf,
        host: String,
        key: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::HelperNotOnPath => write!(
                f,
                "docker-credential-gdcloud is not on PATH: Docker cannot run it until it is (run ./install.sh and add its bin directory to PATH)"
            ),
            Warning::ShadowingAuth { path, host, key } => write!(
                f,
                "{}: auths[{key:?}] holds a stored login for {host} that some tools use instead of the helper; rerun with --remove-stale-auths to remove it",
                path.display()
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub registries: Vec<String>,
    pub files: Vec<FileReport>,
    pub certificates: Vec<PathBuf>,
    pub warnings: Vec<Warning>,
    pub dry_run: bool,
    /// The audience recorded for the registries, with `--audience`.
    pub audience: Option<String>,
    /// The registry the cluster named, when none was given or configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovered: Option<String>,
    /// The property written with what was discovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<super::config::Recorded>,
}

/// Resolves the registries: the flag's hosts, else `artifacts/registry`.
pub fn registries(config: &Config, flag: &[String]) -> Result<Vec<String>, Error> {
    let raw: Vec<String> = if flag.is_empty() {
        config
            .get(REGISTRY_PROPERTY)
            .map(|r| vec![r])
            .ok_or(Error::NoRegistry)?
    } else {
        flag.to_vec()
    };
    let mut hosts = Vec::new();
    for r in raw.iter().flat_map(|r| r.split(',')) {
        if r.trim().is_empty() {
            continue;
        }
        let host = host::registry_host(r).map_err(|_| Error::InvalidRegistry(r.to_string()))?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return Err(Error::NoRegistry);
    }
    Ok(hosts)
}

/// Whether a Docker `auths` entry holds a login Docker would use instead of the helper. `docker
/// login` with a credential helper leaves the entry `{}` behind (the secret is in the helper):
/// such an entry bypasses nothing, and warning about it would send users after a non-problem.
fn holds_login(entry: &Value) -> bool {
    let has = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    has("auth") || has("identitytoken") || (has("username") && has("password"))
}

/// Plans the edit of one file: which changes it needs, and the warnings it raises.
fn plan(
    file: &mut JsonFile,
    hosts: &[String],
    opts: &Options,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Change>, Error> {
    let mut changes = Vec::new();
    let helpers = file.object("credHelpers")?.cloned().unwrap_or_default();
    for host in hosts {
        match helpers.get(host) {
            Some(Value::String(h)) if h == HELPER_NAME => {}
            Some(existing) => {
                let existing = existing
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| existing.to_string());
                if !opts.overwrite {
                    return Err(Error::OtherHelper {
                        path: file.path().to_path_buf(),
                        host: host.clone(),
                        existing,
                    });
                }
                changes.push(Change::ReplaceHelper {
                    host: host.clone(),
                    previous: existing,
                });
            }
            None => changes.push(Change::AddHelper { host: host.clone() }),
        }
    }
    let auths = file.object("auths")?.cloned().unwrap_or_default();
    for (auth_key, entry) in &auths {
        let Ok(normalized) = host::normalize(auth_key) else {
            continue;
        };
        if let Some(host) = hosts.iter().find(|h| **h == normalized) {
            if opts.remove_stale_auths {
                changes.push(Change::RemoveAuth {
                    host: host.clone(),
                    key: auth_key.clone(),
                });
            } else if holds_login(entry) {
                warnings.push(Warning::ShadowingAuth {
                    path: file.path().to_path_buf(),
                    host: host.clone(),
                    key: auth_key.clone(),
                });
            }
        }
    }
    for change in &changes {
        match change {
            Change::AddHelper { host } | Change::ReplaceHelper { host, .. } => {
                file.object_mut("credHelpers")?
                    .insert(host.clone(), Value::String(HELPER_NAME.into()));
            }
            Change::RemoveAuth { key, .. } => {
                // shift_remove keeps the order of the other logins (remove would swap the last one in).
                file.object_mut("auths")?.shift_remove(key);
            }
        }
    }
    Ok(changes)
}

/// Plans every file, then writes those with changes (none with `dry_run`), all under the locks of
/// their directories, so two runs cannot interleave and a refusal leaves every file as it was.
fn write_files(
    paths: &[PathBuf],
    hosts: &[String],
    opts: &Options,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<FileReport>, Error> {
    // Two paths may share a directory: lock each directory once.
    let mut locks = Vec::new();
    let mut locked_dirs: Vec<PathBuf> = Vec::new();
    if !opts.dry_run {
        for p in paths {
            let target = crate::atomic::resolve_target(p).unwrap_or_else(|_| p.clone());
            let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
            if !locked_dirs.contains(&dir) {
                locks.push(JsonFile::lock(p)?);
                locked_dirs.push(dir);
            }
        }
    }
    let mut planned = Vec::new();
    for p in paths {
        let mut file = JsonFile::load(p)?;
        let changes = plan(&mut file, hosts, opts, warnings)?;
        planned.push((file, changes));
    }
    let mut files = Vec::new();
    for (file, changes) in planned {
        let mut report = FileReport {
            path: file.path().to_path_buf(),
            written: false,
            backup: None,
            changes,
        };
        if !opts.dry_run && !report.changes.is_empty() {
            report.backup = file.save()?;
            report.written = true;
        }
        files.push(report);
    }
    drop(locks);
    Ok(files)
}

/// Records `audience` for `hosts` in `auth/registry_audiences`, keeping other hosts' entries.
fn record_audience(config: &mut Config, hosts: &[String], audience: &str) -> Result<(), Error> {
    let mut pairs: Vec<(String, String)> = crate::oidc::registry_audiences(config)
        .into_iter()
        .filter(|(h, _)| !hosts.contains(h))
        .collect();
    pairs.extend(hosts.iter().map(|h| (h.clone(), audience.to_string())));
    let value = pairs
        .iter()
        .map(|(h, a)| format!("{h}={a}"))
        .collect::<Vec<_>>()
        .join(",");
    config.set(crate::oidc::AUDIENCES_PROPERTY, &value)?;
    Ok(())
}

/// Whether `docker-credential-gdcloud` can be found on `PATH`.
pub fn helper_on_path() -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path)
        .any(|dir| crate::plugin::is_executable(&dir.join("docker-credential-gdcloud")))
}

/// Configures the registries given, else the configured one, else the cluster's.
pub async fn run(config: &mut Config, opts: &Options) -> Result<Report, Error> {
    if !opts.registries.is_empty() || config.get(REGISTRY_PROPERTY).is_some() {
        return configure(config, opts);
    }
    let host = super::discovery::registry_from(&opts.cluster)
        .await
        .map_err(|e| Error::Discovery(Box::new(e)))?;
    let opts = Options {
        registries: vec![host.clone()],
        ..opts.clone()
    };
    let mut report = configure(config, &opts)?;
    // Remembered so later host-less commands need no --kubeconfig to find the registry again.
    if !opts.dry_run {
        config.set(REGISTRY_PROPERTY, &host)?;
        report.recorded = Some(super::config::Recorded {
            configuration: config.name().to_string(),
            property: REGISTRY_PROPERTY.to_string(),
            value: host.clone(),
            source: "the cluster's Harbor".to_string(),
        });
    }
    report.discovered = Some(host);
    Ok(report)
}

fn configure(config: &mut Config, opts: &Options) -> Result<Report, Error> {
    let hosts = registries(config, &opts.registries)?;
    // Installing under /etc is only done when asked for by name.
    let ca = match (&opts.ca_cert_path, opts.config_cert) {
        (Some(p), true) => Some(certs::read_ca(p)?),
        (None, true) => return Err(Error::NoCaFile),
        (Some(_), false) => return Err(Error::CaFileWithoutConfigCert),
        (None, false) => None,
    };
    let mut paths = vec![docker_config::docker_config_path()?];
    if opts.containers {
        paths.push(docker_config::containers_auth_path());
    }
    let mut warnings = Vec::new();
    if !helper_on_path() {
        warnings.push(Warning::HelperNotOnPath);
    }
    let files = write_files(&paths, &hosts, opts, &mut warnings)?;
    let mut certificates = Vec::new();
    if let Some(ca) = &ca {
        for host in &hosts {
            if opts.dry_run {
                certificates.extend(certs::targets(host)?);
            } else {
                certificates.extend(certs::install(host, ca)?);
            }
        }
    }
    if let (Some(aud), false) = (&opts.audience, opts.dry_run) {
        record_audience(config, &hosts, aud)?;
    }
    Ok(Report {
        audience: opts.audience.clone(),
        registries: hosts,
        files,
        certificates,
        warnings,
        dry_run: opts.dry_run,
        discovered: None,
        recorded: None,
    })
}
