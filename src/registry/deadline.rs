//! How long a registry may take: a small request (ping, token, manifest, tag list, HEAD, Harbor
//! API) must finish within an overall deadline, and a blob stream must keep moving at a minimum
//! rate.
//!
//! The HTTP client alone only bounds connecting and idle reads (see [`crate::http::client`]): a
//! server that sends one byte every few seconds never trips an idle timeout and holds a command
//! forever. Blobs may legitimately take hours, so they get a rate floor averaged over a window
//! instead of a deadline (as curl's `--speed-limit`/`--speed-time` do); everything else is small
//! and gets a deadline.
//!
//! `GDCLOUD_HTTP_REQUEST_TIMEOUT` and `GDCLOUD_HTTP_STALL_WINDOW` (seconds) override the deadline
//! and the window, for very slow links and for tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::error::Error;

/// The overall deadline of a small request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A blob stream slower than this, averaged over [`STALL_WINDOW`], fails.
pub const MIN_RATE: u64 = 1024;
pub const STALL_WINDOW: Duration = Duration::from_secs(30);

fn from_env(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
        .unwrap_or(default)
}

/// The deadline of a small request (see the module docs for the override).
pub fn request_timeout() -> Duration {
    from_env("GDCLOUD_HTTP_REQUEST_TIMEOUT", REQUEST_TIMEOUT)
}

/// The window over which a blob stream's rate is averaged.
pub fn stall_window() -> Duration {
    from_env("GDCLOUD_HTTP_STALL_WINDOW", STALL_WINDOW)
}

/// The error for a small request past its deadline.
pub fn too_long(method: &str, url: &str) -> Error {
    Error::Stalled {
        method: method.to_string(),
        url: crate::http::redact_url(url),
        reason: format!("took longer than {} s", request_timeout().as_secs()),
    }
}

fn too_slow_reason(direction: &str) -> String {
    format!(
        "{direction} less than {} KiB/s for {} s",
        MIN_RATE / 1024,
        stall_window().as_secs()
    )
}

/// The error for a blob stream below the rate floor.
pub fn too_slow(method: &str, url: &str, direction: &str) -> Error {
    Error::Stalled {
        method: method.to_string(),
        url: crate::http::redact_url(url),
        reason: too_slow_reason(direction),
    }
}

/// Counts the bytes of one window and says when a window closed below the floor.
struct Meter {
    window: Duration,
    started: Instant,
    bytes: u64,
}

impl Meter {
    fn new(window: Duration) -> Meter {
        Meter {
            window,
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn floor(&self) -> u64 {
        (MIN_RATE as u128 * self.window.as_millis() / 1000) as u64
    }
}

/// A download body that fails once a window passes with fewer than the floor's bytes.
pub struct RateChecked<S> {
    inner: S,
    meter: Meter,
    timer: Pin<Box<Sleep>>,
    url: String,
    failed: bool,
}

impl<S> RateChecked<S> {
    pub fn new(inner: S, url: &str) -> RateChecked<S> {
        RateChecked::with_window(inner, url, stall_window())
    }

    fn with_window(inner: S, url: &str, window: Duration) -> RateChecked<S> {
        let meter = Meter::new(window);
        let timer = Box::pin(tokio::time::sleep_until(meter.started + meter.window));
        RateChecked {
            inner,
            meter,
            timer,
            url: crate::http::redact_url(url),
            failed: false,
        }
    }
}

impl<S, E> Stream for RateChecked<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                this.meter.bytes += b.len() as u64;
                return Poll::Ready(Some(Ok(b)));
            }
            Poll::Ready(Some(Err(e))) => {
                return Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            if this.meter.bytes < this.meter.floor() {
                this.failed = true;
                return Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "GET {} {}; check the network or the registry",
                        this.url,
                        too_slow_reason("sent")
                    ),
                ))));
            }
            this.meter.bytes = 0;
            this.meter.started = Instant::now();
            let next = this.meter.started + this.meter.window;
            this.timer.as_mut().reset(next);
        }
        Poll::Pending
    }
}

/// Counts the bytes an upload body hands to the connection, for [`watch_upload`].
pub fn counted<S>(
    inner: S,
    counter: Arc<AtomicU64>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    use futures_util::StreamExt;
    inner.inspect(move |item| {
        if let Ok(b) = item {
            counter.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
    })
}

/// Runs `send` (an upload of `total` bytes whose body feeds `counter`), failing it once a window
/// passes with fewer than the floor's bytes taken by the server. After the last byte the wait
/// for the answer falls under the client's idle timeout: the registry may hash a large blob.
pub async fn watch_upload<F, T>(
    send: F,
    counter: Arc<AtomicU64>,
    total: u64,
    method: &str,
    url: &str,
) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    let watchdog = async {
        let window = stall_window();
        let floor = Meter::new(window).floor();
        let mut last = 0u64;
        loop {
            tokio::time::sleep(window).await;
            let now = counter.load(Ordering::Relaxed);
            if now >= total {
                return std::future::pending::<Error>().await;
            }
            if now - last < floor {
                return too_slow(method, url, "took");
            }
            last = now;
        }
    };
    tokio::select! {
        r = send => r,
        e = watchdog => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn every(pause: Duration, size: usize, n: u32) -> impl Stream<Item = std::io::Result<Bytes>> {
        Box::pin(futures_util::stream::unfold(0u32, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(pause).await;
            Some((Ok(Bytes::from(vec![0u8; size])), i + 1))
        }))
    }

    #[tokio::test]
    async fn a_trickle_fails_after_one_window_and_a_steady_stream_does_not() {
        let window = Duration::from_millis(300);
        // One byte every 20 ms: far below 1 KiB/s, so the first window ends it.
        let mut s = RateChecked::with_window(
            every(Duration::from_millis(20), 1, 1000),
            "http://h/b",
            window,
        );
        let mut got = 0;
        let err = loop {
            match s.next().await.unwrap() {
                Ok(_) => got += 1,
                Err(e) => break e,
            }
        };
        assert!(got < 30, "{got}");
        assert!(err.to_string().contains("sent less than 1 KiB/s"), "{err}");
        assert!(s.next().await.is_none(), "nothing after the failure");
        // 1 KiB every 20 ms (50 KiB/s) for three windows passes.
        let s = RateChecked::with_window(
            every(Duration::from_millis(20), 1024, 45),
            "http://h/b",
            window,
        );
        let all: Vec<_> = s.collect().await;
        assert_eq!(all.len(), 45);
        assert!(all.iter().all(|r| r.is_ok()));
    }
}
