//! Getting Harbor ready for a load (issue 11), before any blob is sent: every project the load
//! pushes into must exist (Harbor refuses pushes into a missing one) and have room for the bytes
//! the load would newly store there (Harbor refuses pushes past a quota half-way through). The
//! calls are [`super::harbor_projects`]'s, the arithmetic [`super::quota`]'s; this module orders
//! them so a refusal comes before anything is changed where it can: existing projects' quotas
//! are checked before any project is created, and [`plan_projects`] changes nothing at all.

use std::collections::BTreeMap;

use serde::Serialize;

use super::auth::Credentials;
use super::client::Client;
use super::harbor_projects::{
    create_project, default_storage_limit, project, storage_quota, valid_project_name, Created,
    ProjectsError, Result,
};
use super::quota::{self, StorageQuota};

/// Where a project of the load stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    /// It was there.
    Exists,
    /// This preparation created it (private).
    Created,
    /// Missing at first, then another loader created it first (Harbor answered 409).
    CreatedByAnother,
    /// Missing; a real run with `create` would create it ([`plan_projects`]).
    ToCreate,
}

/// One project of a load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreparedProject {
    pub name: String,
    /// Harbor's project id; `None` while it is still to be created.
    pub id: Option<i64>,
    pub status: ProjectStatus,
    /// Bytes the load would newly store there.
    pub need: u64,
    /// Its storage quota when checked (`None`: not checked, or Harbor keeps none); for a project
    /// to be created, Harbor's default (`storage_per_project`) with nothing used.
    pub quota: Option<StorageQuota>,
}

/// The projects of a load, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectsReport {
    pub projects: Vec<PreparedProject>,
}

/// Makes a load into Harbor safe to start: every project of `needs` (`(project, bytes the load
/// would newly send there)`, a project may repeat) must exist — missing ones are created private
/// when `create`, else the load is refused naming them — and, when `check_quota`, the bytes must
/// fit each project's quota (a created project's is read back: Harbor's default applies).
/// Nothing is created while an existing project's quota refuses the load. `creds` is Harbor's
/// admin login.
pub async fn prepare_projects(
    client: &Client,
    creds: &Credentials,
    needs: &[(String, u64)],
    create: bool,
    check_quota: bool,
) -> Result<ProjectsReport> {
    let (mut found, missing) = survey(client, creds, needs, create).await?;
    if check_quota {
        fill_quotas(client, creds, &mut found).await?;
    }
    let mut made = Vec::new();
    for (name, need) in missing {
        let status = match create_project(client, creds, &name).await? {
            Created::Created => ProjectStatus::Created,
            Created::AlreadyExisted => ProjectStatus::CreatedByAnother,
        };
        let Some(p) = project(client, creds, &name).await? else {
            return Err(ProjectsError::Unexpected {
                registry: client.registry().to_string(),
                what: format!("creating project {name}"),
                reason: "the project is still missing after it was created".into(),
            });
        };
        made.push(entry(&name, Some(p.id), status, need));
    }
    if check_quota {
        fill_quotas(client, creds, &mut made).await?;
    }
    Ok(report(found, made))
}

/// What [`prepare_projects`] would do, changing nothing (`--dry-run`): missing projects are
/// [`ProjectStatus::ToCreate`] and, when `check_quota`, checked against Harbor's default quota.
pub async fn plan_projects(
    client: &Client,
    creds: &Credentials,
    needs: &[(String, u64)],
    create: bool,
    check_quota: bool,
) -> Result<ProjectsReport> {
    let (mut found, missing) = survey(client, creds, needs, create).await?;
    let mut planned: Vec<PreparedProject> = missing
        .into_iter()
        .map(|(name, need)| entry(&name, None, ProjectStatus::ToCreate, need))
        .collect();
    if check_quota {
        if !planned.is_empty() {
            let default = StorageQuota::new_project(default_storage_limit(client, creds).await?);
            planned.iter_mut().for_each(|p| p.quota = Some(default));
        }
        found.append(&mut planned);
        fill_quotas(client, creds, &mut found).await?;
    }
    Ok(report(found, planned))
}

/// Sums `needs` per project and looks each project up: the ones there, and the missing ones
/// (refused naming them all unless `create`).
async fn survey(
    client: &Client,
    creds: &Credentials,
    needs: &[(String, u64)],
    create: bool,
) -> Result<(Vec<PreparedProject>, Vec<(String, u64)>)> {
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for (p, n) in needs {
        if !valid_project_name(p) {
            return Err(ProjectsError::InvalidName {
                project: crate::text::escape(p).into_owned(),
            });
        }
        let t = total.entry(p.clone()).or_default();
        *t = t.saturating_add(*n);
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (name, need) in total {
        match project(client, creds, &name).await? {
            Some(p) => found.push(entry(&name, Some(p.id), ProjectStatus::Exists, need)),
            None => missing.push((name, need)),
        }
    }
    if !missing.is_empty() && !create {
        let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        return Err(ProjectsError::Missing {
            projects: names.join(", "),
            registry: client.registry().to_string(),
        });
    }
    Ok((found, missing))
}

fn entry(name: &str, id: Option<i64>, status: ProjectStatus, need: u64) -> PreparedProject {
    PreparedProject {
        name: name.to_string(),
        id,
        status,
        need,
        quota: None,
    }
}

fn report(mut a: Vec<PreparedProject>, b: Vec<PreparedProject>) -> ProjectsReport {
    a.extend(b);
    a.sort_by(|x, y| x.name.cmp(&y.name));
    ProjectsReport { projects: a }
}

/// Reads the quotas of the projects that exist (those to be created keep the default they were
/// given) and runs the preflight on all of them.
async fn fill_quotas(
    client: &Client,
    creds: &Credentials,
    projects: &mut [PreparedProject],
) -> Result<()> {
    let mut quotas = BTreeMap::new();
    let mut needs = Vec::new();
    for p in projects.iter_mut() {
        if let Some(id) = p.id {
            p.quota = storage_quota(client, creds, id).await?;
        }
        if let Some(q) = p.quota {
            quotas.insert(p.name.clone(), q);
        }
        needs.push((p.name.clone(), p.need));
    }
    quota::check(&needs, &quotas)?;
    Ok(())
}
