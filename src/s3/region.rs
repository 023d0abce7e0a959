//! The region requests are signed for. SigV4 binds every signature to a region, and a server that
//! expects another one refuses the request before it looks at the keys: AWS and Garage answer
//! `AuthorizationHeaderMalformed` with the region they want in `<Region>`, AWS's redirects
//! (`PermanentRedirect`) carry it in `x-amz-bucket-region`. Signing for `us-east-1` and calling that
//! refusal "the keys were refused" sent users to re-run `configure` for nothing (issue 12).
//!
//! So the client starts with the configured region (`storage/s3_region`, default `us-east-1`),
//! learns the one the server names, re-signs and retries once, and reports what it used
//! ([`super::Client::learned_region`]) so the command can say so. A HEAD answer has no body to
//! read the region from: the client then asks for the bucket's location (`GET /BUCKET?location`),
//! whose refusal does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::xml;

/// The region signed for when none is configured (what S3-compatible servers expect).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The region of one client, shared by its clones.
#[derive(Debug)]
pub(super) struct State {
    current: RwLock<String>,
    /// The region was changed to one the server named.
    learned: AtomicBool,
    /// A signed request succeeded with the current region.
    confirmed: AtomicBool,
}

impl State {
    pub(super) fn new(configured: Option<&str>) -> State {
        State {
            current: RwLock::new(
                configured
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .unwrap_or(DEFAULT_REGION)
                    .to_string(),
            ),
            learned: AtomicBool::new(false),
            confirmed: AtomicBool::new(false),
        }
    }

    pub(super) fn current(&self) -> String {
        self.current.read().expect("not poisoned").clone()
    }

    /// Switches to `region` when it differs from the current one; whether it did.
    pub(super) fn learn(&self, region: &str) -> bool {
        let mut cur = self.current.write().expect("not poisoned");
        if *cur == region {
            return false;
        }
        *cur = region.to_string();
        self.learned.store(true, Ordering::SeqCst);
        self.confirmed.store(false, Ordering::SeqCst);
        true
    }

    /// The region the server named, when it differed from the configured one.
    pub(super) fn learned(&self) -> Option<String> {
        self.learned.load(Ordering::SeqCst).then(|| self.current())
    }

    pub(super) fn confirm(&self) {
        self.confirmed.store(true, Ordering::SeqCst);
    }

    pub(super) fn confirmed(&self) -> bool {
        self.confirmed.load(Ordering::SeqCst)
    }
}

/// Whether a failed answer with this status can be a region refusal (AWS and Garage: 400
/// `AuthorizationHeaderMalformed`; AWS: 301 `PermanentRedirect`; some servers: 403).
pub(super) fn may_name_region(status: u16) -> bool {
    matches!(status, 301 | 400 | 403)
}

/// The region a failed answer asks for: `x-amz-bucket-region`, else `<Region>` of an error
/// document whose code is about the region. `None` when it names none (or an unusable one).
pub fn named(header: Option<&str>, body: &str) -> Option<String> {
    let from_body = || {
        let code = xml::text(body, "Code")?;
        if !matches!(
            code.as_ref(),
            "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "AuthorizationQueryParametersError"
                | "IllegalLocationConstraintException"
                | "InvalidRegion"
        ) {
            return None;
        }
        Some(xml::text(body, "Region")?.into_owned())
    };
    let region = header.map(str::to_string).or_else(from_body)?;
    let region = region.trim();
    // A region goes into every signature's scope: plain names only, never a path or a space.
    let plain = !region.is_empty()
        && region.len() <= 64
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    plain.then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_named_by_refusals() {
        let garage = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AuthorizationHeaderMalformed</Code><Message>Authorization header malformed, unexpected scope: '20261203/us-east-1/s3/aws4_request', expected: '20261203/garage/s3/aws4_request'</Message><Resource>/b</Resource><Region>garage</Region></Error>";
        assert_eq!(named(None, garage).as_deref(), Some("garage"));
        assert_eq!(
            named(Some("eu-west-1"), "").as_deref(),
            Some("eu-west-1"),
            "the header wins"
        );
        let redirect = "<Error><Code>PermanentRedirect</Code><Region>us-west-2</Region></Error>";
        assert_eq!(named(None, redirect).as_deref(), Some("us-west-2"));
        // Other refusals carry a <Region> too (Garage adds it to every error): not a region hint.
        let denied = "<Error><Code>AccessDenied</Code><Region>garage</Region></Error>";
        assert_eq!(named(None, denied), None);
        assert_eq!(named(None, "not xml"), None);
        let hostile =
            "<Error><Code>AuthorizationHeaderMalformed</Code><Region>a/b c</Region></Error>";
        assert_eq!(named(None, hostile), None);
        assert_eq!(named(Some(""), ""), None);
    }

    #[test]
    fn learning_switches_once_and_reports() {
        let s = State::new(None);
        assert_eq!(s.current(), DEFAULT_REGION);
        assert_eq!(s.learned(), None);
        assert!(!s.learn(DEFAULT_REGION), "same region: nothing learned");
        assert!(s.learn("garage"));
        assert_eq!(s.current(), "garage");
        assert_eq!(s.learned().as_deref(), Some("garage"));
        assert!(!s.confirmed());
        s.confirm();
        assert!(s.confirmed());
        assert_eq!(State::new(Some(" eu-1 ")).current(), "eu-1");
        assert_eq!(State::new(Some("")).current(), DEFAULT_REGION);
    }
}
