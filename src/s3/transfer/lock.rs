//! One download per target at a time. Two `cp` runs into the same destination used to share the
//! temp file and its sidecar: the first renamed it into place, the second then failed with
//! `rename into place …: No such file or directory` and left its sidecar behind (issue 12).
//!
//! The temp file itself is the lock: each download holds an exclusive `flock` on it (through
//! [`std::fs::File::try_lock`]) from the moment it opens it until its final name is taken and the
//! sidecar is gone. The lock dies with the process, so a killed run never leaves a stale lock, and
//! no extra lock file is left behind. A second run waits (saying so once) up to
//! [`lock_wait`], then says another copy is in progress. After the wait it checks that the
//! name still leads to the file it locked: when the first run finished meanwhile (the file was
//! renamed into place), it starts over on a fresh temp file.

use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::time::{Duration, Instant};

use super::dest::{Dir, Refusal};
use super::Error;
use crate::progress::Progress;

/// How long a download waits for another one into the same target: `GDCLOUD_S3_LOCK_WAIT`
/// (seconds) when set, else ten minutes.
pub const LOCK_WAIT_VAR: &str = "GDCLOUD_S3_LOCK_WAIT";
const LOCK_WAIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(100);

/// The wait bound ([`LOCK_WAIT_VAR`]).
pub fn lock_wait() -> Duration {
    std::env::var(LOCK_WAIT_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(LOCK_WAIT, Duration::from_secs_f64)
}

/// The temp file `name` in `dir`, opened when it is ours or created, and locked for this run.
/// Waits while another run holds it; `label` names the target in the notice and the error.
pub(super) async fn lock_partial(
    dir: &Dir,
    name: &OsStr,
    label: &str,
    progress: &dyn Progress,
) -> Result<File, Error> {
    let wait = lock_wait();
    let deadline = Instant::now() + wait;
    let mut noticed = false;
    loop {
        let file = match dir.open_own(name)? {
            Some(f) => f,
            None => match dir.create_new(name) {
                Ok(f) => f,
                // Another run created it between our look and our create: look again.
                Err(Refusal::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists
                        && Instant::now() < deadline =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            },
        };
        match file.try_lock() {
            Ok(()) if dir.is_entry(name, &file) => return Ok(file),
            // Renamed into place (or replaced) while we waited: take the name up afresh.
            Ok(()) => continue,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(super::io_err("lock", &dir.path_of(name))(e))
            }
        }
        if !noticed {
            progress.notice(&format!(
                "{label}: another copy is writing it; waiting up to {} s for it to finish",
                wait.as_secs()
            ));
            noticed = true;
        }
        if Instant::now() >= deadline {
            return Err(Error::Busy {
                target: label.to_string(),
                secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
