//! Opt-in diagnostics for the helper (`auth/helper_log`): one line per call, never a secret.
//!
//! A log that cannot be opened or written is skipped silently: a diagnostic must never turn a working
//! `docker pull` into a failing one (the runbook's `tee … Permission denied` is the anti-example).

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use crate::atomic;

/// The property naming the log file.
pub const LOG_PROPERTY: &str = "auth/helper_log";

/// Appends one line: time, pid, action, the server key (not secret), the store and the outcome.
pub fn record(path: &Path, action: &str, server: Option<&str>, store: &str, outcome: &str) {
    let Ok(mut file) = atomic::open_private_append(path) else {
        return;
    };
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    let line = format!(
        "{now} pid={} action={action} server={} store={store} result={}\n",
        std::process::id(),
        server.unwrap_or("-"),
        outcome.replace('\n', " "),
    );
    let _ = file.write_all(line.as_bytes());
}
