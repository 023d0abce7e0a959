//! Talking to OCI registries and Harbor: references, authentication, the distribution client and
//! Harbor's REST API.
//!
//! [`Client`] is the one type callers use; its methods are spread over the modules below by what
//! they do: connecting (`client`), sending with retries (`transport`), the token dance
//! ([`auth`]), manifests and tags (`manifests`), blob reads (`blobs`) and uploads (`uploads`).
//! Harbor's REST API: tags with push times (`harbor`), projects and quotas (`harbor_projects`),
//! getting them ready for a load (`harbor_prepare`), the quota preflight (`quota`, pure).

pub mod auth;
mod blobs;
pub(crate) mod client;
pub(crate) mod deadline;
pub(crate) mod error;
pub(crate) mod harbor;
pub(crate) mod harbor_prepare;
pub(crate) mod harbor_projects;
mod manifests;
pub(crate) mod origin;
pub(crate) mod paging;
pub(crate) mod quota;
pub mod reference;
mod referrers;
mod transport;
mod uploads;

pub use blobs::Download;
pub use client::{Client, ClientOptions, Scope};
pub use error::Error;
pub use manifests::{Fetched, MAX_MANIFEST_BYTES};
pub use reference::Reference;
pub use uploads::{BlobUpload, Mount};
