//! A TCP proxy for tests, on `127.0.0.1:<random port>`, in front of a plain-HTTP test registry: it
//! forwards every connection unchanged, records the head of every HTTP/1.x request it sees (request
//! line and headers, e.g. `Range: bytes=N-`), and can be told to misbehave the way a flaky network
//! does — cut every connection after N bytes of response, refuse new connections, or drop request
//! headers on the way (a server or middlebox that ignores `Range`). It exists
//! because an interrupted download cannot be produced reliably any other way, and because the
//! recorded request heads are the only proof that a client resumed with HTTP `Range` (or uploaded
//! in PATCH chunks) rather than starting over.
//!
//! The proxy parses request bodies only to find where the next request head starts
//! (`Content-Length` or chunked encoding); anything that does not look like HTTP (a TLS
//! `ClientHello` from a client trying `https://` first) is passed through byte for byte.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// No cut: forward responses whole.
const NEVER: u64 = u64::MAX;
/// A request head larger than this is not HTTP we understand: pass the rest through raw.
const MAX_HEAD: usize = 64 * 1024;

/// The head of one request that went through the proxy, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// Which accepted connection (1, 2, …) carried it.
    pub connection: usize,
    /// `GET`, `HEAD`, `PATCH`, …
    pub method: String,
    /// The request target, e.g. `/v2/proj/app/blobs/sha256:…`.
    pub target: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl ProxiedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `N` of a `Range: bytes=N-` (or `bytes=N-M`) header.
    pub fn range_start(&self) -> Option<u64> {
        let v = self.header("range")?;
        let spec = v.trim().strip_prefix("bytes=")?;
        let (start, _) = spec.split_once('-')?;
        start.trim().parse().ok()
    }

    /// `METHOD TARGET` plus the headers, one per line, for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!("#{} {} {}", self.connection, self.method, self.target);
        for (k, v) in &self.headers {
            let v = if k == "authorization" {
                "<redacted>"
            } else {
                v
            };
            s.push_str(&format!("\n    {k}: {v}"));
        }
        s
    }
}

struct Shared {
    upstream: String,
    cut_after: AtomicU64,
    refuse: AtomicBool,
    stop: AtomicBool,
    connections: AtomicUsize,
    cuts: AtomicUsize,
    requests: Mutex<Vec<ProxiedRequest>>,
    /// Request headers (lower-case names) not forwarded upstream.
    dropped_headers: Mutex<Vec<String>>,
    /// How many more request bodies reach the upstream with their first byte flipped.
    corrupt_bodies: AtomicUsize,
    /// Request targets forwarded as another target (exact match).
    rewrites: Mutex<HashMap<String, String>>,
    /// Both sockets of every open connection, so that `Drop` can end them.
    live: Mutex<HashMap<usize, (TcpStream, TcpStream)>>,
}

/// A running proxy; dropping it stops accepting and ends every open connection.
pub struct Proxy {
    /// `127.0.0.1:PORT`: use it as the registry host.
    pub host: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:<random port>` to `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on 127.0.0.1:0");
        let host = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            cut_after: AtomicU64::new(NEVER),
            refuse: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            cuts: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            dropped_headers: Mutex::new(Vec::new()),
            corrupt_bodies: AtomicUsize::new(0),
            rewrites: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || accept_loop(listener, s));
        Proxy {
            host,
            shared,
            accept: Some(accept),
        }
    }

    /// From now on, cut each connection (both directions) once it has carried `bytes` bytes of
    /// response in total; `None` forwards everything again. Applies to open connections too.
    pub fn cut_after(&self, bytes: Option<u64>) {
        self.shared
            .cut_after
            .store(bytes.unwrap_or(NEVER), Ordering::SeqCst);
    }

    /// While `true`, new connections are accepted and closed at once (a registry going away).
    pub fn refuse_connections(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// From now on, remove these request headers (case-insensitive) before forwarding; the
    /// recorded requests still show them as the client sent them. An empty list forwards all.
    pub fn drop_request_headers(&self, names: &[&str]) {
        *self.shared.dropped_headers.lock().unwrap() =
            names.iter().map(|n| n.to_ascii_lowercase()).collect();
    }

    /// The next `n` request bodies sent with a `Content-Length` reach the upstream with their
    /// first byte flipped, as a faulty middlebox or network would deliver them.
    pub fn corrupt_request_bodies(&self, n: usize) {
        self.shared.corrupt_bodies.store(n, Ordering::SeqCst);
    }

    /// From now on, forward a request for exactly `from` (e.g. `/v2/p/r/manifests/sha512:…`) as
    /// one for `to`: a registry that answers a reference Distribution does not serve (a sha512
    /// digest) with the bytes of another. The recorded request keeps the target the client sent.
    pub fn rewrite_target(&self, from: &str, to: &str) {
        self.shared
            .rewrites
            .lock()
            .unwrap()
            .insert(from.to_string(), to.to_string());
    }

    /// Every request head seen so far.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// How many connections were accepted (refused ones included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many connections were cut by [`Proxy::cut_after`].
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// All recorded requests, described one after the other (for assertion messages).
    pub fn log(&self) -> String {
        self.requests()
            .iter()
            .map(ProxiedRequest::describe)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(&self.host);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, (c, u)) in self.shared.live.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if shared.refuse.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(upstream) = TcpStream::connect(&shared.upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let clones = (|| {
            Some((
                client.try_clone().ok()?,
                upstream.try_clone().ok()?,
                client.try_clone().ok()?,
                upstream.try_clone().ok()?,
            ))
        })();
        let Some((client_w, upstream_r, client_keep, upstream_keep)) = clones else {
            continue;
        };
        shared
            .live
            .lock()
            .unwrap()
            .insert(id, (client_keep, upstream_keep));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            let _ = pump_requests(id, client, upstream, &s);
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            pump_responses(id, upstream_r, client_w, &s);
        });
    }
}

/// Client → upstream: request heads are parsed and recorded, bodies copied as framed.
fn pump_requests(
    id: usize,
    client: TcpStream,
    mut upstream: TcpStream,
    shared: &Shared,
) -> io::Result<()> {
    let mut reader = BufReader::new(client);
    let result = (|| -> io::Result<()> {
        loop {
            let first = match reader.fill_buf()? {
                [] => return Ok(()),
                buf => buf[0],
            };
            if !first.is_ascii_uppercase() {
                // Not HTTP/1.x (e.g. a TLS ClientHello): pass everything through untouched.
                io::copy(&mut reader, &mut upstream)?;
                return Ok(());
            }
            let mut head = Vec::new();
            loop {
                let n = reader.read_until(b'\n', &mut head)?;
                if n == 0 {
                    upstream.write_all(&head)?;
                    return Ok(());
                }
                if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
                    break;
                }
                if head.len() > MAX_HEAD {
                    upstream.write_all(&head)?;
                    io::copy(&mut reader, &mut upstream)?;
                    return Ok(());
                }
            }
            let request = parse_head(id, &head);
            let head = rewritten(&head, &request.target, &shared.rewrites.lock().unwrap());
            upstream.write_all(&without_headers(
                &head,
                &shared.dropped_headers.lock().unwrap(),
            ))?;
            let chunked = request
                .header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            let length = request
                .header("content-length")
                .and_then(|v| v.parse::<u64>().ok());
            shared.requests.lock().unwrap().push(request);
            if chunked {
                copy_chunked(&mut reader, &mut upstream)?;
            } else if let Some(n) = length {
                let corrupt = n > 0
                    && shared
                        .corrupt_bodies
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                        .is_ok();
                let mut body = (&mut reader).take(n);
                let mut copied = 0;
                if corrupt {
                    let mut first = [0u8; 1];
                    body.read_exact(&mut first)?;
                    upstream.write_all(&[first[0] ^ 0xff])?;
                    copied = 1;
                }
                copied += io::copy(&mut body, &mut upstream)?;
                if copied < n {
                    return Ok(());
                }
            }
        }
    })();
    let _ = upstream.shutdown(Shutdown::Write);
    result
}

/// Copies one chunked body (chunks, the last `0` chunk and the trailer) verbatim.
fn copy_chunked(reader: &mut BufReader<TcpStream>, upstream: &mut TcpStream) -> io::Result<()> {
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        upstream.write_all(&line)?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let size = u64::from_str_radix(&size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailer lines up to an empty line.
            loop {
                let mut t = Vec::new();
                if reader.read_until(b'\n', &mut t)? == 0 {
                    return Ok(());
                }
                upstream.write_all(&t)?;
                if t == b"\r\n" || t == b"\n" {
                    return Ok(());
                }
            }
        }
        // The chunk and its CRLF.
        let want = size + 2;
        let copied = io::copy(&mut reader.by_ref().take(want), upstream)?;
        if copied < want {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// `head` with its request target replaced when `rewrites` names it.
fn rewritten(head: &[u8], target: &str, rewrites: &HashMap<String, String>) -> Vec<u8> {
    match rewrites.get(target) {
        Some(to) => String::from_utf8_lossy(head)
            .replacen(&format!(" {target} "), &format!(" {to} "), 1)
            .into_bytes(),
        None => head.to_vec(),
    }
}

/// `head` without the header lines named in `dropped` (lower-case).
fn without_headers(head: &[u8], dropped: &[String]) -> Vec<u8> {
    if dropped.is_empty() {
        return head.to_vec();
    }
    let mut out = Vec::with_capacity(head.len());
    for (i, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
        let name = String::from_utf8_lossy(line)
            .split_once(':')
            .map(|(k, _)| k.trim().to_ascii_lowercase());
        if i > 0 && name.is_some_and(|n| dropped.contains(&n)) {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

fn parse_head(id: usize, head: &[u8]) -> ProxiedRequest {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    ProxiedRequest {
        connection: id,
        method,
        target,
        headers,
    }
}

/// Upstream → client, counting bytes and cutting the connection when told to.
fn pump_responses(id: usize, mut upstream: TcpStream, mut client: TcpStream, shared: &Shared) {
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let limit = shared.cut_after.load(Ordering::SeqCst);
        let allowed = limit.saturating_sub(sent);
        if (n as u64) > allowed {
            let _ = client.write_all(&buf[..allowed as usize]);
            let _ = client.flush();
            shared.cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    // Either side ended (or the cut): end the whole connection, so the request pump stops too.
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    shared.live.lock().unwrap().remove(&id);
}
