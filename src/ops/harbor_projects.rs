//! Harbor's projects and quotas before a load (issue 11): every project a bundle pushes into
//! must exist (created private with `--create-projects`) and have room for the bytes the load
//! would newly send (`--skip-quota-check` skips that), all settled through Harbor's REST API
//! before any blob goes up. The logic is [`crate::registry::harbor_prepare::prepare_projects`];
//! this op only connects and finds the admin login (given, or the cluster's `harbor-admin`
//! secret as `list-versions --credentials-from-cluster` reads it).

pub use crate::registry::harbor_prepare::{PreparedProject, ProjectStatus, ProjectsReport};
pub use crate::registry::harbor_projects::{valid_project_name, Created, ProjectsError};
pub use crate::registry::quota::{human, QuotaExceeded, StorageQuota, UNLIMITED};

use crate::registry::auth::Credentials;
use crate::registry::{harbor_prepare, harbor_projects, Client, ClientOptions};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Projects(#[from] ProjectsError),
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    #[error(transparent)]
    Cluster(#[from] super::discovery::Error),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Harbor's `host[:port]`.
    pub registry: String,
    pub client: ClientOptions,
    /// Harbor's admin login; `None`: the cluster's (`harbor_admin_from`), else the registry
    /// login found for the host.
    pub admin: Option<Credentials>,
    /// Read the admin login from this cluster's `harbor-admin` secret.
    pub harbor_admin_from: Option<crate::kube::Options>,
    /// Create missing projects (private) instead of refusing the load.
    pub create: bool,
    /// Refuse the load when its new bytes do not fit a project's quota.
    pub check_quota: bool,
    /// Change nothing: report what would be created and check the quota it would get.
    pub dry_run: bool,
}

/// Connects to `opts.registry` and prepares its projects for a load that would newly send
/// `needs` (`(project, bytes)`) — see [`harbor_prepare::prepare_projects`] and, with
/// `opts.dry_run`, [`harbor_prepare::plan_projects`].
pub async fn prepare(opts: &Options, needs: &[(String, u64)]) -> Result<ProjectsReport, Error> {
    let client = Client::connect(&opts.registry, &opts.client).await?;
    let creds = admin_login(&client, opts).await?;
    let (create, check) = (opts.create, opts.check_quota);
    let report = if opts.dry_run {
        harbor_prepare::plan_projects(&client, &creds, needs, create, check).await?
    } else {
        harbor_prepare::prepare_projects(&client, &creds, needs, create, check).await?
    };
    Ok(report)
}

/// Creates private project `name` in `opts.registry` (a 409 from another loader is
/// [`Created::AlreadyExisted`]), whatever `opts.create` says.
pub async fn create(opts: &Options, name: &str) -> Result<Created, Error> {
    let client = Client::connect(&opts.registry, &opts.client).await?;
    let creds = admin_login(&client, opts).await?;
    Ok(harbor_projects::create_project(&client, &creds, name).await?)
}

/// The login Harbor's API gets: the one given, the cluster's admin, else the registry login.
pub(crate) async fn admin_login(client: &Client, opts: &Options) -> Result<Credentials, Error> {
    if let Some(c) = &opts.admin {
        return Ok(c.clone());
    }
    if let Some(cluster) = &opts.harbor_admin_from {
        return Ok(super::discovery::harbor_admin_from(cluster).await?);
    }
    Ok(client.credentials().clone())
}
