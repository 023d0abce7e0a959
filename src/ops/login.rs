//! `gdcloud auth login`: sign in at the organisation's OpenID provider, then remember the provider
//! settings given on the command line. The audiences asked for are those the registries need
//! (`auth/registry_audiences`) plus any named, so `docker pull` works right after signing in.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::oidc::{self, login, Settings};

pub use crate::oidc::login::{Interaction, Report};
pub use crate::oidc::Error;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The provider (saved as `auth/issuer_url` after a successful sign-in).
    pub issuer_url: Option<String>,
    /// The OAuth client (saved as `auth/client_id`).
    pub client_id: Option<String>,
    /// CA (PEM) for the provider's TLS (saved as `auth/login_config_cert_path`).
    pub ca_file: Option<PathBuf>,
    /// Audiences besides those of `auth/registry_audiences`.
    pub audiences: Vec<String>,
    /// Device code (or pasted redirect) instead of a browser.
    pub no_browser: bool,
    /// The program `$BROWSER` names, else the desktop's opener.
    pub browser: Option<String>,
    pub log_http: bool,
    /// How long to wait for the browser or the device approval.
    pub timeout: Duration,
}

/// Signs in; the settings are written only after the sign-in succeeded, so a typo never replaces
/// working settings.
pub async fn run(
    config: &mut Config,
    opts: &Options,
    ui: &dyn Interaction,
) -> Result<Report, Error> {
    // Absolute, because the session keeps it for refreshes, which the credential helper runs from
    // whatever directory Docker was started in (and the property is saved the same).
    let cert = opts
        .ca_file
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    let settings = Settings::resolve(
        config,
        opts.issuer_url.as_deref(),
        opts.client_id.as_deref(),
        cert.as_deref(),
    )?;
    let login_opts = login::Options {
        settings,
        audiences: audiences(config, &opts.audiences),
        no_browser: opts.no_browser,
        browser: opts.browser.clone(),
        log_http: opts.log_http,
        timeout: opts.timeout.max(Duration::from_secs(1)),
    };
    let report = login::run(config, &login_opts, ui).await?;
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(i) = &opts.issuer_url {
        pairs.push((oidc::ISSUER_PROPERTY, i.clone()));
    }
    if let Some(c) = &opts.client_id {
        pairs.push((oidc::CLIENT_ID_PROPERTY, c.clone()));
    }
    if let Some(p) = &cert {
        pairs.push((oidc::CERT_PROPERTY, p.display().to_string()));
    }
    if !pairs.is_empty() {
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        config.set_many(&refs)?;
    }
    Ok(report)
}

/// The registries' audiences and the extra ones, sorted, each once.
fn audiences(config: &Config, extra: &[String]) -> Vec<String> {
    let mut all: Vec<String> = oidc::registry_audiences(config)
        .into_iter()
        .map(|(_, a)| a)
        .chain(extra.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}
