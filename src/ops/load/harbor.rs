//! A load into Harbor: its projects settled through Harbor's REST API around the plan, so that
//! Harbor's refusals (a push into a missing project, a push past a quota half-way through)
//! come before anything is sent, as one line naming the project.
//!
//! Two steps. Before planning, [`survey`] finds which projects are missing: without
//! `--create-projects` the load stops there; with it, the plan asks nothing of those projects'
//! repositories (everything is new there, and Harbor would answer 401 for a project it does not
//! have). After planning, [`settle`] creates them (private) and checks every project's quota
//! against the bytes the plan would newly send there (`--skip-quota-check` skips that); with
//! `--dry-run` it only says what it would do.

use std::collections::{BTreeSet, HashSet};

use super::{Error, Options, Plan};
use crate::ops::harbor_projects::{self as hp, ProjectStatus, ProjectsReport};
use crate::registry::auth::Credentials;
use crate::registry::{harbor, harbor_prepare, Client};

/// Harbor's admin login and the projects still to be created.
pub(super) struct Harbor {
    creds: Credentials,
    pub(super) absent: HashSet<String>,
}

/// `None` when the registry is not a Harbor (no `/api/v2.0/ping`): it has no projects.
pub(super) async fn survey(
    client: &Client,
    projects: BTreeSet<String>,
    opts: &Options,
) -> Result<Option<Harbor>, Error> {
    if !harbor::is_harbor(client).await {
        return Ok(None);
    }
    let admin = hp::Options {
        admin: opts.harbor_admin.clone(),
        harbor_admin_from: opts.harbor_admin_from.clone(),
        ..hp::Options::default()
    };
    let creds = hp::admin_login(client, &admin).await?;
    let needs: Vec<(String, u64)> = projects.into_iter().map(|p| (p, 0)).collect();
    // Changes nothing: refuses missing projects unless they may be created.
    let report = harbor_prepare::plan_projects(client, &creds, &needs, opts.create_projects, false)
        .await
        .map_err(hp::Error::from)?;
    let absent = report
        .projects
        .into_iter()
        .filter(|p| p.status == ProjectStatus::ToCreate)
        .map(|p| p.name)
        .collect();
    Ok(Some(Harbor { creds, absent }))
}

/// Creates the missing projects and checks the quotas against what `plan` would send (with
/// `--dry-run`, only what would be done).
pub(super) async fn settle(
    client: &Client,
    harbor: &Harbor,
    plan: &Plan,
    opts: &Options,
) -> Result<ProjectsReport, Error> {
    let mut needs: Vec<(String, u64)> = plan
        .projects()
        .into_iter()
        .map(|p| (p.project, p.new_bytes))
        .collect();
    // A project whose every entry is already there still has to exist for the report.
    for name in &harbor.absent {
        if !needs.iter().any(|(p, _)| p == name) {
            needs.push((name.clone(), 0));
        }
    }
    let (create, check) = (opts.create_projects, !opts.skip_quota_check);
    let report = if opts.dry_run {
        harbor_prepare::plan_projects(client, &harbor.creds, &needs, create, check)
            .await
            .map_err(hp::Error::from)?
    } else {
        harbor_prepare::prepare_projects(client, &harbor.creds, &needs, create, check)
            .await
            .map_err(hp::Error::from)?
    };
    Ok(report)
}
