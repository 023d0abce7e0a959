//! Encodings and times as Harbor writes them: double-encoded repository names, queries,
//! chunked bodies, digests, RFC 3339 times with milliseconds.

use super::*;

/// Harbor's repository-name encoding in a path: URL-encode, then URL-encode again.
pub fn double_encode(name: &str) -> String {
    percent_encode(&percent_encode(name))
}

pub(super) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Strict percent-decoding of a path segment: `None` on a malformed escape (Go answers 400).
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `a=b&c=d` with `+` as space.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let d = |s: &str| {
                let s = s.replace('+', " ");
                percent_decode(&s).unwrap_or(s)
            };
            (d(k), d(v))
        })
        .collect()
}

pub(super) fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = rest.get(start + size + 2..).unwrap_or(&[]);
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A time the way Harbor's API writes it (go-openapi `strfmt.DateTime`, RFC 3339 with
/// milliseconds) from a core running in UTC: `2024-05-01T10:00:00.000Z`.
pub fn harbor_time(unix_ms: u64) -> String {
    harbor_time_with_offset(unix_ms, 0)
}

/// The same from a core whose local time is `offset_minutes` from UTC:
/// `2024-10-27T02:30:00.000+02:00` (`Z` for 0).
pub fn harbor_time_with_offset(unix_ms: u64, offset_minutes: i32) -> String {
    let local = (unix_ms as i64 + i64::from(offset_minutes) * 60_000) as u64;
    let secs = rfc3339_seconds(local);
    let zone = if offset_minutes == 0 {
        "Z".to_string()
    } else {
        let (sign, m) = if offset_minutes < 0 {
            ('-', -offset_minutes)
        } else {
            ('+', offset_minutes)
        };
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    };
    format!("{}.{:03}{zone}", secs.trim_end_matches('Z'), local % 1000)
}

/// `2024-05-01T10:00:00Z` (whole seconds, UTC) of a Unix time in milliseconds.
pub fn rfc3339_seconds(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}
