//! S3 object storage for `gdcloud storage cp/ls`: a SigV4 signer ([`sigv4`]), a path-style client
//! for objects, ranges, multipart uploads and listings ([`Client`], its requests split by seam
//! across `request`, `failure`, `objects`, `multipart` and `listing`), typed errors ([`Error`]),
//! and the transfer engine `cp` runs on (`transfer`: resumable ranged downloads, multipart
//! uploads, verification).
//!
//! Our own small client rather than `object_store`: `cp` needs exact control of streamed ranged
//! GETs, resumable downloads and multipart uploads with abort, on the reqwest/rustls stack the rest
//! of the project already builds (custom CAs, `--insecure`, `--log-http`), not a second HTTP stack.

pub mod addressing;
pub mod client;
pub mod deadline;
pub mod error;
mod failure;
mod listing;
mod multipart;
pub mod object;
mod objects;
pub mod region;
mod request;
pub mod sigv4;
pub(crate) mod transfer;
mod xml;

pub use addressing::Addressing;
pub use client::{Client, DEFAULT_REGION};
pub use deadline::RateFloor;
pub use error::{Error, Result};
pub use listing::{Listing, MAX_LISTED, MAX_PAGES};
pub use object::{CompletedPart, ListPage, ListQuery, ObjectEntry, ObjectInfo};
pub use objects::Download;
pub use request::Upload;
