//! Opt-in diagnostics for the helper (`auth/helper_log`): one line per call, never a secret.
//!
//! A log that cannot be opened or written (or is not a regular file: a FIFO would block) is
//! skipped silently: a diagnostic must never turn a working
//! `docker pull` into a failing one (the runbook's `tee … Permission denied` is the anti-example).

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::protocol::Outcome;
use crate::atomic;
use crate::text::Escaped;

/// The property naming the log file.
pub const LOG_PROPERTY: &str = "auth/helper_log";

/// Appends one line: time, pid, action, the server key (not secret), the store and the outcome.
pub fn record(path: &Path, outcome: &Outcome) {
    let Ok(mut file) = atomic::open_private_append(path) else {
        return;
    };
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    // The server key comes from whoever calls the helper: escaped, a newline in it cannot forge a
    // line of its own.
    let line = format!(
        "{now} pid={} action={} server={} store={} result={}\n",
        std::process::id(),
        Escaped(outcome.action.as_str()),
        Escaped(outcome.server.as_deref().unwrap_or("-")),
        Escaped(outcome.store),
        Escaped(&outcome.summary()),
    );
    let _ = file.write_all(line.as_bytes());
}
