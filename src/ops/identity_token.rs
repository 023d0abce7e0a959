//! `gdcloud auth print-identity-token`: a token for an audience (or the ID token) from the
//! sign-in, from the cache while it has life left, refreshed otherwise. The credential helper runs
//! it (with [`Freshness::HalfLife`]) to refresh, so refreshing stays out of the helper binary.

use crate::config::Config;
use crate::oidc::tokens;

pub use crate::oidc::tokens::{Freshness, Token, DEFAULT_MARGIN};
pub use crate::oidc::Error;

#[derive(Debug, Clone)]
pub struct Options {
    /// The audience (RFC 8707 resource); `None` for the ID token.
    pub audience: Option<String>,
    pub freshness: Freshness,
    pub log_http: bool,
}

pub async fn run(config: &Config, opts: &Options) -> Result<Token, Error> {
    tokens::token(
        config,
        opts.audience.as_deref(),
        opts.freshness,
        opts.log_http,
    )
    .await
}
