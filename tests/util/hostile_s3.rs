//! A scripted S3 server for what no real server does: it lists keys Garage never lists (a leading
//! `/`, control characters, names too long for a file system) and misbehaves on request
//! ([`Script`]: endless listings, silence). It answers HEAD and (ranged) GET with each key's
//! bytes and never checks signatures. Keys a real server stores (`..` segments included) are
//! tested against Garage instead ([`super::s3::S3Server`]).
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// What a [`HostileS3`] does besides serving its objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Script {
    /// Lists its objects in one page.
    #[default]
    Plain,
    /// Every listing page carries the same continuation token (a listing without end).
    SameToken,
    /// Every listing page carries a new continuation token and one more object (a listing that
    /// grows without end).
    FreshTokens,
    /// Answers nothing for this many seconds (HEAD and listings), then as [`Script::Plain`].
    Silent(u64),
    /// Refuses every request as signed for the wrong region (400 `AuthorizationHeaderMalformed`,
    /// no body for HEAD), naming another region each time: a server that never agrees.
    WrongRegion,
}

/// A scripted S3 server that lists `keys` under bucket `bucket` (ignoring delimiters), answers
/// HEAD and (ranged) GET with each key's bytes, and never checks signatures: for the misbehaviour
/// no real server shows on request ([`Script`]) and for listings a real server would not hand out.
pub struct HostileS3 {
    pub endpoint: String,
    /// Listing requests answered so far (every request, with [`Script::WrongRegion`]).
    pub listings: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileS3 {
    pub fn start(bucket: &str, objects: Vec<(String, Vec<u8>)>) -> HostileS3 {
        HostileS3::start_with(bucket, objects, Script::Plain)
    }

    pub fn start_with(bucket: &str, objects: Vec<(String, Vec<u8>)>, script: Script) -> HostileS3 {
        use std::sync::atomic::Ordering::SeqCst;
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", server.server_addr().to_ip().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, count) = (stop.clone(), listings.clone());
        let bucket = bucket.to_string();
        let thread = std::thread::spawn(move || {
            while !st.load(SeqCst) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                if let Script::Silent(secs) = script {
                    let until = Instant::now() + Duration::from_secs(secs);
                    while Instant::now() < until && !st.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                let page = count.load(SeqCst);
                if script == Script::WrongRegion {
                    let n = count.fetch_add(1, SeqCst);
                    let _ = req.respond(wrong_region(n));
                    continue;
                }
                let resp = hostile_answer(&bucket, &objects, &req, script, page, &count);
                let _ = req.respond(resp);
            }
        });
        HostileS3 {
            endpoint,
            listings,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostileS3 {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wrong_region(n: usize) -> tiny_http::ResponseBox {
    tiny_http::Response::from_string(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AuthorizationHeaderMalformed</Code><Message>unexpected scope</Message><Region>zone-{n}</Region></Error>"
    ))
    .with_status_code(400)
    .with_header(header("Content-Type", "application/xml"))
    .boxed()
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` with XML's special characters as entities, and control characters as character
/// references (as S3 sends keys that hold them).
fn xml_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push_str(&format!("&#x{:x};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn hostile_answer(
    bucket: &str,
    objects: &[(String, Vec<u8>)],
    req: &tiny_http::Request,
    script: Script,
    page: usize,
    listings: &std::sync::atomic::AtomicUsize,
) -> tiny_http::ResponseBox {
    let raw = req.url().to_string();
    let (path, query) = raw.split_once('?').unwrap_or((raw.as_str(), ""));
    let path = percent_decode(path);
    let rest = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(bucket))
        .unwrap_or("");
    const DATE: &str = "Mon, 02 Nov 2026 10:00:00 GMT";
    const ETAG: &str = "&quot;0123456789abcdef0123456789abcdef-1&quot;";
    if rest.is_empty() || rest == "/" {
        listings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let prefix = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("prefix="))
            .map(percent_decode)
            .unwrap_or_default();
        let (truncated, token) = match script {
            Script::SameToken => (
                true,
                "<NextContinuationToken>again</NextContinuationToken>".to_string(),
            ),
            Script::FreshTokens => (
                true,
                format!("<NextContinuationToken>t{page}</NextContinuationToken>"),
            ),
            _ => (false, String::new()),
        };
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{bucket}</Name><Prefix>{}</Prefix><IsTruncated>{truncated}</IsTruncated>{token}",
            xml_escape(&prefix)
        );
        let mut entry = |k: &str, len: usize| {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>2026-11-02T10:00:00.000Z</LastModified><ETag>{ETAG}</ETag><Size>{len}</Size></Contents>",
                xml_escape(k)
            ))
        };
        if script == Script::FreshTokens {
            entry(&format!("{prefix}page-{page}"), 1);
        } else {
            for (k, v) in objects.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                entry(k, v.len());
            }
        }
        xml.push_str("</ListBucketResult>");
        return tiny_http::Response::from_string(xml)
            .with_header(header("Content-Type", "application/xml"))
            .boxed();
    }
    let key = &rest[1..];
    let Some((_, bytes)) = objects.iter().find(|(k, _)| k == key) else {
        return tiny_http::Response::from_string(format!(
            "<Error><Code>NoSuchKey</Code><Key>{}</Key></Error>",
            xml_escape(key)
        ))
        .with_status_code(404)
        .boxed();
    };
    let etag = "\"0123456789abcdef0123456789abcdef-1\"";
    let range = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .map(|h| h.value.as_str().to_string());
    let (status, body, content_range) = match range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
    {
        Some((a, b)) if !bytes.is_empty() => {
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().unwrap_or(bytes.len() - 1).min(bytes.len() - 1);
            (
                206,
                bytes[a..=b].to_vec(),
                Some(format!("bytes {a}-{b}/{}", bytes.len())),
            )
        }
        _ => (200, bytes.clone(), None),
    };
    let mut resp = tiny_http::Response::from_data(body)
        .with_status_code(status)
        .with_header(header("ETag", etag))
        .with_header(header("Last-Modified", DATE))
        .with_header(header("Accept-Ranges", "bytes"));
    if let Some(cr) = content_range {
        resp = resp.with_header(header("Content-Range", &cr));
    }
    resp.boxed()
}
