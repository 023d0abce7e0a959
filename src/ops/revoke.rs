//! `gdcloud auth revoke`: revoke the refresh token at the provider (RFC 7009) and forget the
//! session and its cached tokens; offline, the local removal still happens and the report says why
//! the provider was not told.

use crate::config::Config;
use crate::oidc::tokens;

pub use crate::oidc::tokens::RevokeReport as Report;
pub use crate::oidc::Error;

pub async fn run(config: &Config, log_http: bool) -> Result<Report, Error> {
    tokens::revoke(config, log_http).await
}
