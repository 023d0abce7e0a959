//! A hostile HTTP server for tests: a stand-in for a compromised or malicious registry (or the
//! "other host" it points clients at) that answers what no real registry would — `Link` and
//! `Location` headers naming another host, a token realm over plain HTTP, gigabyte bodies, bodies
//! sent a byte at a time — and records every request it sees, with its `Authorization` header
//! and body, so a test can prove where credentials went.
//!
//! It exists because Distribution, rightly, never answers like that; behaviour that is the
//! registry's own is tested against the real Distribution registry (`super::registry`).
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, e.g. `/v2/proj/app/tags/list?n=1000`.
    pub url: String,
    pub authorization: Option<String>,
    /// The `Host` header: how the client addressed this server.
    pub host: String,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or("")
    }
}

/// What to send back.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

pub enum Body {
    Bytes(Vec<u8>),
    /// `prefix`, then `len` bytes of `fill`, then `suffix`, produced as they are sent (a 1 GiB
    /// body costs the server nothing).
    Huge {
        prefix: Vec<u8>,
        fill: u8,
        len: u64,
        suffix: Vec<u8>,
    },
    /// `data`, one byte per `pause`, with its full `Content-Length` announced up front.
    Trickle {
        data: Vec<u8>,
        pause: Duration,
    },
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status)
            .header("Content-Type", "application/json")
            .body(value.to_string().into_bytes())
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, bytes: Vec<u8>) -> Reply {
        self.body = Body::Bytes(bytes);
        self
    }

    pub fn with(mut self, body: Body) -> Reply {
        self.body = body;
        self
    }
}

/// A body produced one byte per pause.
struct Slow {
    data: Vec<u8>,
    at: usize,
    pause: Duration,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= self.data.len() || buf.is_empty() {
            return Ok(0);
        }
        std::thread::sleep(self.pause);
        buf[0] = self.data[self.at];
        self.at += 1;
        Ok(1)
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync + 'static;

/// A running server on `bind_ip:<random port>`; stops on drop. Plain HTTP/1.1, one request per
/// connection; a TLS `ClientHello` (a client trying `https://` first) is answered by closing
/// the connection, as a plain-HTTP server's garbage answer would end the handshake.
pub struct Hostile {
    /// `IP:PORT`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    /// On loopback.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Hostile {
        Hostile::start_with("127.0.0.1", None, handler)
    }

    /// On loopback, reading request bodies past their first 64 KiB one byte per `pause` (a
    /// registry that takes an upload at a trickle).
    pub fn start_reading_slowly(
        pause: Duration,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Hostile {
        Hostile::start_with("127.0.0.1", Some(pause), handler)
    }

    fn start_with(
        ip: &str,
        read_pause: Option<Duration>,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Hostile {
        let listener = TcpListener::bind(format!("{ip}:0")).expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (seen, handler) = (seen.clone(), handler.clone());
                    // Each connection on its own thread: a trickling body must not hold up others.
                    std::thread::spawn(move || {
                        let _ = serve(conn, &seen, &*handler, read_pause);
                    });
                }
            })
        };
        Hostile {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests that carried an `Authorization` header, described for assertion messages.
    pub fn authorized(&self) -> Vec<String> {
        self.seen()
            .iter()
            .filter(|s| s.authorization.is_some())
            .map(|s| format!("{} {}", s.method, s.url))
            .collect()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request from `conn`, records it, and writes the handler's reply.
fn serve(
    conn: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    handler: &Handler,
    read_pause: Option<Duration>,
) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    if reader.fill_buf()?.first() == Some(&0x16) {
        return Ok(());
    }
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let url = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n =
                usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        (&mut reader).take(n.min(64 << 10)).read_to_end(&mut body)?;
        let mut byte = [0u8; 1];
        while (body.len() as u64) < n {
            if let Some(pause) = read_pause {
                std::thread::sleep(pause);
                reader.read_exact(&mut byte)?;
                body.push(byte[0]);
            } else if (&mut reader)
                .take(n - body.len() as u64)
                .read_to_end(&mut body)?
                == 0
            {
                break;
            }
        }
    }
    let s = Seen {
        method,
        url,
        authorization: header("authorization"),
        host: header("host").unwrap_or_default(),
        body,
    };
    seen.lock().unwrap().push(s.clone());
    let reply = handler(&s);
    let (len, mut data): (u64, Box<dyn Read>) = match reply.body {
        Body::Bytes(b) => (b.len() as u64, Box::new(io::Cursor::new(b))),
        Body::Huge {
            prefix,
            fill,
            len,
            suffix,
        } => (
            prefix.len() as u64 + len + suffix.len() as u64,
            Box::new(
                io::Cursor::new(prefix)
                    .chain(io::repeat(fill).take(len))
                    .chain(io::Cursor::new(suffix)),
            ),
        ),
        Body::Trickle { data, pause } => (data.len() as u64, Box::new(Slow { data, at: 0, pause })),
    };
    let mut out = conn;
    let mut head = format!("HTTP/1.1 {} Hostile\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if s.method != "HEAD" {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    out.write_all(head.as_bytes())?;
    if s.method != "HEAD" {
        let mut buf = [0u8; 64 << 10];
        loop {
            let n = data.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
    let _ = out.shutdown(Shutdown::Write);
    Ok(())
}

/// `url` (of a server listening on 127.0.0.1) as seen from "another host": the same server
/// named `0.0.0.0`, which Linux connects to over loopback, but which is not a loopback name, so
/// the credential policy treats it like any other host (loopback hosts may get credentials over
/// plain HTTP, as Docker allows). No packet leaves the machine.
pub fn as_another_host(url: &str) -> String {
    assert!(url.contains("//127.0.0.1:"), "{url} is not on 127.0.0.1");
    url.replacen("//127.0.0.1:", "//0.0.0.0:", 1)
}

/// Runs `c` (with nothing on stdin) and returns its output and its peak resident memory in KiB,
/// sampled from `/proc` every 10 ms; kills it and panics after `limit`.
pub fn run_measured(mut c: std::process::Command, limit: Duration) -> (std::process::Output, u64) {
    use std::process::Stdio;
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let pid = child.id();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = std::time::Instant::now();
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for l in s.lines() {
                if let Some(v) = l
                    .strip_prefix("VmHWM:")
                    .or_else(|| l.strip_prefix("VmRSS:"))
                {
                    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kb);
                }
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the command did not finish within {limit:?} (peak {peak} KiB); stderr: {}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        std::process::Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        },
        peak,
    )
}
