//! Talking to OCI registries and Harbor: references, authentication, the distribution client and
//! Harbor's REST API.

pub mod auth;
pub mod client;
pub mod deadline;
pub mod error;
pub mod harbor;
pub mod origin;
pub mod paging;
pub mod reference;

pub use client::{Client, ClientOptions, Fetched, Scope};
pub use error::{Error, Result};
pub use reference::Reference;
