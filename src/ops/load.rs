//! `gdcloud artifacts load BUNDLE [REGISTRY[/PREFIX]]`: every image of an air-gapped bundle (what
//! `tree` lists: `PROJECT/REPO:TAG` ref names in one OCI layout, or a folder of layouts) into a
//! registry, with its cosign tags (`sha256-<hex>.sig`, `.att`, `.sbom`) and OCI 1.1 referrers,
//! as GDC's `gdcloud system container-registry load-oci` does (issue 11).
//!
//! Every manifest goes up as its exact bytes, so every image and index keeps its digest (a
//! bundle's layers are already compressed: nothing is converted). The load is planned first
//! (`plan`): what is already there at the same digest is skipped with one HEAD of its tag and
//! none of its blobs, which makes a re-run after an interruption cheap and safe; `--verify`
//! judges every image before anything is sent. [`preflight`] then has the last word before the
//! sending (`send`), where each blob goes up once per registry and is mounted into the other
//! repositories that need it.

mod bundle;
mod harbor;
mod plan;
mod send;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::ops::verify::{self, Trust};
use crate::progress::Progress;
use crate::registry::{self, Client, ClientOptions, Reference};
use crate::sign;

pub use plan::{Plan, ProjectNeed};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Layout(#[from] crate::layout::Error),
    #[error(transparent)]
    Verify(#[from] verify::Error),
    #[error(transparent)]
    Harbor(#[from] crate::ops::harbor_projects::Error),
    #[error("{0} holds no OCI image layout (no oci-layout file in it or below it); give the bundle's directory")]
    NoBundle(PathBuf),
    #[error(
        "no image of the bundle matches --ref {0}; `gdcloud artifacts tree BUNDLE` lists them"
    )]
    NoMatch(String),
    #[error("no registry to load into: give REGISTRY[/PREFIX] or set one with `gdcloud config set artifacts/registry HOST`")]
    NoRegistry,
    #[error("{0} is not REGISTRY[/PREFIX]: give a host (and a path of lowercase repository components), e.g. harbor.example.com/mirror")]
    Destination(String),
    #[error("{first} {verb}: {reason} ({refused} entries refused, {failed} cannot be loaded); nothing was sent: fix the bundle, or load the others with --continue-on-error")]
    Stopped {
        first: String,
        verb: &'static str,
        reason: String,
        refused: usize,
        failed: usize,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub bundle: PathBuf,
    /// `REGISTRY[/PREFIX]`; the default registry when `None`.
    pub destination: Option<String>,
    pub default_registry: Option<String>,
    /// Entries and blob transfers at once.
    pub concurrency: usize,
    /// Blobs larger than this upload as PATCH chunks of this size.
    pub chunk_size: u64,
    /// `--ref PATTERN`: only the images whose `PROJECT/REPO:TAG` matches one (`*` wildcards),
    /// with their signatures and referrers.
    pub refs: Vec<String>,
    pub dry_run: bool,
    pub continue_on_error: bool,
    /// `--verify` with `--key` or `--policy`.
    pub trust: Option<Trust>,
    pub client: ClientOptions,
    /// Harbor: create missing projects (private) instead of refusing the load.
    pub create_projects: bool,
    /// Harbor: load even when the new bytes do not fit a project's quota.
    pub skip_quota_check: bool,
    /// Harbor's admin login for its REST API; else `harbor_admin_from`'s, else the registry's.
    pub harbor_admin: Option<crate::registry::auth::Credentials>,
    /// Read Harbor's admin login from this cluster's `harbor-admin` secret.
    pub harbor_admin_from: Option<crate::kube::Options>,
}

/// What became of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// To be sent (what a `--dry-run` reports).
    Planned,
    Pushed,
    /// Already in the registry at the same digest.
    Skipped,
    /// `--verify` refused it (or the image it belongs to).
    Refused,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Pushed => "pushed",
            Status::Skipped => "skipped",
            Status::Refused => "refused",
            Status::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RefReport {
    /// `PROJECT/REPO:TAG` (or `@DIGEST` for an untagged referrer) in the registry.
    pub reference: String,
    /// Its name in the bundle.
    pub source: String,
    pub digest: String,
    pub status: Status,
    /// One line: why it was refused or failed, how it was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Blobs the registry lacked in its repository when planned, and their bytes.
    pub blobs_missing: usize,
    pub bytes_missing: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub registry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparency_log: Option<&'static str>,
    pub refs: Vec<RefReport>,
    /// What each Harbor project receives (the quota preflight's figures).
    pub projects: Vec<ProjectNeed>,
    /// Harbor only: each project's state (existed, created, to create) and quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harbor_projects: Option<crate::ops::harbor_projects::ProjectsReport>,
    /// Blobs none of the target repositories held, and their bytes: what the plan uploads
    /// (the HEADs ask only the repositories loaded into).
    pub blobs_to_send: usize,
    pub bytes_to_send: u64,
    pub blobs_uploaded: usize,
    pub blobs_mounted: usize,
    pub blobs_skipped: usize,
    pub bytes_uploaded: u64,
}

impl Report {
    /// Entries refused or failed: the load's exit code is non-zero when there is any.
    pub fn failures(&self) -> usize {
        self.refs
            .iter()
            .filter(|r| matches!(r.status, Status::Failed | Status::Refused))
            .count()
    }

    pub fn count(&self, status: Status) -> usize {
        self.refs.iter().filter(|r| r.status == status).count()
    }
}

/// Splits `[http://]REGISTRY[/PREFIX]`, the prefix checked as repository components; `true`
/// when written `http://` (plain HTTP, as for push).
fn destination(opts: &Options) -> Result<(String, Option<String>, bool), Error> {
    let Some(dest) = opts.destination.as_deref() else {
        let registry = opts.default_registry.clone().ok_or(Error::NoRegistry)?;
        return Ok((registry, None, false));
    };
    let bad = || Error::Destination(crate::text::escape(dest).into_owned());
    let (rest, plain) = crate::host::strip_scheme(dest);
    let trimmed = rest.trim_end_matches('/');
    let (host, prefix) = match trimmed.split_once('/') {
        Some((h, p)) => (h, Some(p.to_string())),
        None => (trimmed, None),
    };
    if host.is_empty() || !(crate::host::looks_like_host(host) || host.contains(':')) {
        return Err(bad());
    }
    let probe = format!("{host}/{}/x:t", prefix.as_deref().unwrap_or("p"));
    match Reference::parse(&probe, None) {
        Ok(r) if r.registry == host => Ok((host.to_string(), prefix, plain)),
        _ => Err(bad()),
    }
}

/// The last word before anything is sent, on the whole plan: refused images and entries that
/// cannot be loaded stop the load here unless `--continue-on-error`. Harbor's project creation
/// (`--create-projects`) and quota preflight belong here too, from [`Plan::projects`].
pub async fn preflight(_client: &Client, plan: &Plan, opts: &Options) -> Result<(), Error> {
    if opts.continue_on_error {
        return Ok(());
    }
    let stopped = |s: &Status| matches!(s, Status::Refused | Status::Failed);
    let Some(first) = plan.items.iter().find(|i| stopped(&i.status)) else {
        return Ok(());
    };
    let count = |want: Status| plan.items.iter().filter(|i| i.status == want).count();
    Err(Error::Stopped {
        first: crate::text::escape(&first.destination()).into_owned(),
        verb: if first.status == Status::Refused {
            "is refused by --verify"
        } else {
            "cannot be loaded"
        },
        reason: first.reason.clone().unwrap_or_default(),
        refused: count(Status::Refused),
        failed: count(Status::Failed),
    })
}

/// Plans the load and, unless `--dry-run`, sends it. An entry that fails is in the report, not
/// an error: the caller decides the exit code from [`Report::failures`].
pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let (host, prefix, plain_http) = destination(opts)?;
    let policy = opts.trust.as_ref().map(Trust::load).transpose()?;
    let bundle = bundle::read(&opts.bundle)?;
    let mut client_opts = opts.client.clone();
    client_opts.plain_http |= plain_http;
    let client = Client::connect(&host, &client_opts).await?;
    let bundle::Bundle { layouts, entries } = bundle;
    let entries = bundle::select(entries, &opts.refs);
    if entries.is_empty() && !opts.refs.is_empty() {
        return Err(Error::NoMatch(
            crate::text::escape(&opts.refs.join(" ")).into_owned(),
        ));
    }
    let projects = entries
        .iter()
        .map(|e| plan::project_of(&plan::repository_of(e, prefix.as_deref())).to_string())
        .collect();
    let harbor = harbor::survey(&client, projects, opts).await?;
    let absent = harbor
        .as_ref()
        .map(|h| h.absent.clone())
        .unwrap_or_default();
    let mut plan = plan::make(
        &client,
        entries,
        &layouts,
        prefix.as_deref(),
        policy.as_ref(),
        &absent,
        opts,
    )
    .await?;
    let mut report = report_of(&host, prefix, opts, &plan);
    if opts.dry_run {
        if let Some(h) = &harbor {
            report.harbor_projects = Some(harbor::settle(&client, h, &plan, opts).await?);
        }
        return Ok(report);
    }
    preflight(&client, &plan, opts).await?;
    if let Some(h) = &harbor {
        report.harbor_projects = Some(harbor::settle(&client, h, &plan, opts).await?);
    }
    let sender = send::Sender::new(
        &client,
        &layouts,
        progress,
        opts.chunk_size.max(crate::ops::push::READ_CHUNK as u64),
        opts.concurrency,
        opts.continue_on_error,
    );
    sender.run(&mut plan).await;
    let c = &sender.counters;
    let present: usize = plan
        .items
        .iter()
        .filter(|i| i.status == Status::Pushed)
        .map(|i| i.entry.blobs.len() - i.missing_blobs().count())
        .sum();
    report.blobs_uploaded = c.uploaded.load(Ordering::Relaxed);
    report.blobs_mounted = c.mounted.load(Ordering::Relaxed);
    report.blobs_skipped = c.skipped.load(Ordering::Relaxed) + present;
    report.bytes_uploaded = c.bytes.load(Ordering::Relaxed);
    for (r, item) in report.refs.iter_mut().zip(&plan.items) {
        r.status = item.status;
        r.reason = item.reason.clone();
    }
    Ok(report)
}

fn report_of(host: &str, prefix: Option<String>, opts: &Options, plan: &Plan) -> Report {
    let refs = plan
        .items
        .iter()
        .map(|item| RefReport {
            // Names come from the bundle: escaped, as everything bound for a terminal.
            reference: crate::text::escape(&item.destination()).into_owned(),
            source: crate::text::escape(&item.entry.name()).into_owned(),
            digest: item.entry.root.digest.to_string(),
            status: item.status,
            reason: item.reason.clone(),
            blobs_missing: item.missing_blobs().count(),
            bytes_missing: item.missing_blobs().map(|b| b.size).sum(),
        })
        .collect();
    Report {
        registry: host.to_string(),
        prefix,
        dry_run: opts.dry_run,
        transparency_log: opts.trust.as_ref().map(|_| sign::NO_TRANSPARENCY_LOG),
        refs,
        projects: plan.projects(),
        harbor_projects: None,
        blobs_to_send: plan.blobs_to_send,
        bytes_to_send: plan.bytes_to_send,
        blobs_uploaded: 0,
        blobs_mounted: 0,
        blobs_skipped: 0,
        bytes_uploaded: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(d: Option<&str>) -> Result<(String, Option<String>, bool), Error> {
        destination(&Options {
            destination: d.map(str::to_string),
            default_registry: Some("harbor.local".into()),
            ..Default::default()
        })
    }

    #[test]
    fn registry_and_prefix() {
        assert_eq!(dest(None).unwrap(), ("harbor.local".into(), None, false));
        assert_eq!(
            dest(Some("127.0.0.1:5000/mirror/a")).unwrap(),
            ("127.0.0.1:5000".into(), Some("mirror/a".into()), false)
        );
        assert_eq!(
            dest(Some("http://harbor.example.com/")).unwrap(),
            ("harbor.example.com".into(), None, true)
        );
        assert!(dest(Some("harbor.example.com/Upper")).is_err());
        assert!(dest(Some("project/repo")).is_err());
    }
}
