//! Where the bucket goes in a request's URL (`storage/s3_addressing_style`): in the path
//! (`endpoint/BUCKET/KEY`, the default and what S3-compatible stores take), in the host
//! (`BUCKET.endpoint/KEY`, "virtual-hosted" style, which AWS prefers and some gateways require),
//! or `auto`: the host when the bucket is a DNS label the endpoint's certificate can cover and
//! the endpoint is a name, not an IP address (the rule the AWS SDKs follow).
//!
//! Virtual hosts need DNS for `BUCKET.endpoint`. Names under `localhost` are the loopback
//! addresses by definition (RFC 6761 §6.3; browsers and curl answer them without asking DNS,
//! glibc does not): [`LoopbackNames`] resolves them so, and everything else as before.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// The addressing style.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Addressing {
    #[default]
    Path,
    Virtual,
    Auto,
}

impl Addressing {
    /// `path`, `virtual` or `auto` (any case); `None` or empty is `path`.
    pub fn parse(value: Option<&str>) -> Result<Addressing, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("path") => Ok(Addressing::Path),
            Some("virtual") => Ok(Addressing::Virtual),
            Some("auto") => Ok(Addressing::Auto),
            Some(other) => Err(format!(
                "{other:?} is not an addressing style: use path, virtual or auto"
            )),
        }
    }

    /// Whether `bucket` goes into the host of `endpoint`.
    pub fn in_host(self, endpoint: &Url, bucket: &str) -> bool {
        match self {
            Addressing::Path => false,
            Addressing::Virtual => true,
            Addressing::Auto => {
                matches!(endpoint.host(), Some(Host::Domain(_)))
                    && dns_label(bucket, endpoint.scheme() == "https")
            }
        }
    }
}

/// Whether `bucket` can be a host label: 3–63 lower-case letters, digits and hyphens (dots
/// too over plain HTTP; over TLS a dot makes a name a wildcard certificate does not cover), not
/// starting or ending with a hyphen.
pub(super) fn dns_label(bucket: &str, tls: bool) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (!tls && b == b'.')
        })
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.'])
        && !bucket.contains("..")
}

/// `endpoint` with `bucket.` in front of its host.
pub fn with_bucket_host(endpoint: &Url, bucket: &str) -> Option<Url> {
    let host = endpoint.host_str()?;
    let mut u = endpoint.clone();
    u.set_host(Some(&format!("{bucket}.{host}"))).ok()?;
    Some(u)
}

/// Whether `name` is `localhost` or a name below it (RFC 6761 §6.3).
pub fn is_loopback_name(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "localhost" || n.ends_with(".localhost")
}

/// A resolver that answers names under `localhost` with the loopback addresses and asks the
/// system (getaddrinfo) for every other name.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackNames;

impl reqwest::dns::Resolve for LoopbackNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = if is_loopback_name(&host) {
                vec![
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
                ]
            } else {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_parse_and_choose() {
        assert_eq!(Addressing::parse(None), Ok(Addressing::Path));
        assert_eq!(Addressing::parse(Some("Virtual")), Ok(Addressing::Virtual));
        assert!(Addressing::parse(Some("vhost"))
            .unwrap_err()
            .contains("path, virtual or auto"));
        let name = Url::parse("https://s3.example.org:9000").unwrap();
        let ip = Url::parse("http://127.0.0.1:9000").unwrap();
        assert!(!Addressing::Path.in_host(&name, "bucket"));
        assert!(Addressing::Virtual.in_host(&ip, "bucket"));
        assert!(Addressing::Auto.in_host(&name, "my-bucket"));
        assert!(
            !Addressing::Auto.in_host(&ip, "my-bucket"),
            "an IP has no subdomains"
        );
        assert!(!Addressing::Auto.in_host(&name, "My_Bucket"));
        assert!(!Addressing::Auto.in_host(&name, "a.b.c"), "dots over TLS");
        let plain = Url::parse("http://s3.example.org").unwrap();
        assert!(Addressing::Auto.in_host(&plain, "a.b.c"));
        assert!(!Addressing::Auto.in_host(&name, "-ab"));
        assert_eq!(
            with_bucket_host(&name, "b1").unwrap().as_str(),
            "https://b1.s3.example.org:9000/"
        );
    }

    #[test]
    fn localhost_names_are_loopback() {
        assert!(is_loopback_name("localhost"));
        assert!(is_loopback_name("gdtest-bucket.localhost"));
        assert!(is_loopback_name("B.LOCALHOST."));
        assert!(!is_loopback_name("localhost.example.org"));
        assert!(!is_loopback_name("notlocalhost"));
    }
}
