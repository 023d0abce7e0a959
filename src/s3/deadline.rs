//! Time limits, so that a server that stops answering (or answers a byte a minute) cannot hold a
//! copy forever.
//!
//! Small requests (HEAD, a listing page, create/complete/abort of a multipart upload, DELETE, and
//! the wait for a GET's headers) have one overall deadline each, retries included:
//! [`REQUEST_TIMEOUT`] unless `GDCLOUD_S3_REQUEST_TIMEOUT` (seconds) says otherwise. Streams have
//! no deadline, since a large object takes the time it takes; a download instead fails when it
//! brings less than [`MIN_RATE`] over a window of [`RATE_WINDOW`] (curl's `--speed-limit` /
//! `--speed-time`), and its part is retried like any transfer error.

use std::future::Future;
use std::time::Duration;

use super::error::{Error, Result};

/// The overall deadline of one small request, retries included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Overrides [`REQUEST_TIMEOUT`], in seconds.
pub const REQUEST_TIMEOUT_VAR: &str = "GDCLOUD_S3_REQUEST_TIMEOUT";
/// The slowest a download may go for a whole [`RATE_WINDOW`], in bytes per second.
pub const MIN_RATE: u64 = 1024;
pub const RATE_WINDOW: Duration = Duration::from_secs(30);

/// The deadline for small requests: `GDCLOUD_S3_REQUEST_TIMEOUT` when it is a positive number of
/// seconds, else [`REQUEST_TIMEOUT`].
pub fn request_timeout() -> Duration {
    std::env::var(REQUEST_TIMEOUT_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(REQUEST_TIMEOUT, Duration::from_secs_f64)
}

/// Runs `fut` (one small request, `what` for the message) within `limit`.
pub async fn within<T>(
    limit: Duration,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Deadline {
            what: what(),
            secs: limit.as_secs_f64(),
        }),
    }
}

/// Watches one download stream: [`RateFloor::tick`] fails once a whole window brought less than
/// [`MIN_RATE`]. One timer per stream, reset once per window, so the cost per chunk is an add.
pub struct RateFloor {
    what: String,
    window: Duration,
    bytes: u64,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl RateFloor {
    pub fn new(bucket: &str, key: &str) -> RateFloor {
        RateFloor::with_window(
            format!("s3://{bucket}/{}", crate::text::escape(key)),
            RATE_WINDOW,
        )
    }

    fn with_window(what: String, window: Duration) -> RateFloor {
        RateFloor {
            what,
            window,
            bytes: 0,
            timer: Box::pin(tokio::time::sleep(window)),
        }
    }

    /// Counts bytes received.
    pub fn add(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// Completes at the end of each window: `Ok` (and a new window) when enough came, else the
    /// error that ends the transfer.
    pub async fn tick(&mut self) -> Result<()> {
        (&mut self.timer).await;
        let need = MIN_RATE * self.window.as_secs().max(1);
        if self.bytes < need {
            return Err(Error::TooSlow {
                what: self.what.clone(),
                bytes: self.bytes,
                secs: self.window.as_secs(),
            });
        }
        self.bytes = 0;
        let next = tokio::time::Instant::now() + self.window;
        self.timer.as_mut().reset(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_stream_fails_after_a_window_a_fast_one_does_not() {
        let mut f = RateFloor::with_window("s3://b/k".into(), Duration::from_secs(1));
        f.add(2 * 1024);
        f.tick().await.unwrap();
        f.add(100);
        let e = f.tick().await.unwrap_err().to_string();
        assert!(e.contains("s3://b/k") && e.contains("1 s"), "{e}");
    }

    #[tokio::test]
    async fn small_requests_have_a_deadline() {
        let e = within(
            Duration::from_millis(50),
            || "HEAD s3://b/k".into(),
            std::future::pending::<Result<()>>(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("HEAD s3://b/k") && e.contains(REQUEST_TIMEOUT_VAR),
            "{e}"
        );
    }
}
