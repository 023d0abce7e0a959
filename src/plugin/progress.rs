//! Progress bars on stderr for long transfers: one bar per blob and a total, drawn only when stderr
//! is a terminal and `--quiet` was not given (otherwise every call is a no-op), so operations can
//! report progress unconditionally and stdout stays for results.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    total: ProgressBar,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::hidden()
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("visible", &self.multi.is_some())
            .finish()
    }
}

fn bytes_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    /// Bars drawn on stderr.
    pub fn stderr(total_label: &str) -> Progress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let total = multi.add(ProgressBar::new(0));
        total.set_style(bytes_style(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
        ));
        total.set_prefix(total_label.to_string());
        Progress {
            multi: Some(multi),
            total,
        }
    }

    /// No output at all.
    pub fn hidden() -> Progress {
        Progress {
            multi: None,
            total: ProgressBar::hidden(),
        }
    }

    /// Visible when `enabled` (see [`super::Output::progress_enabled`]).
    pub fn new(enabled: bool, total_label: &str) -> Progress {
        if enabled {
            Progress::stderr(total_label)
        } else {
            Progress::hidden()
        }
    }

    /// Adds `bytes` to the expected total.
    pub fn expect(&self, bytes: u64) {
        self.total.inc_length(bytes);
    }

    /// A bar for one blob of `size` bytes, labelled `name` (e.g. a short digest).
    pub fn blob(&self, name: &str, size: u64) -> BlobProgress {
        let bar = match &self.multi {
            Some(m) => {
                let b = m.add(ProgressBar::new(size));
                b.set_style(bytes_style(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                ));
                b.set_prefix(name.to_string());
                b
            }
            None => ProgressBar::hidden(),
        };
        BlobProgress {
            bar,
            total: self.total.clone(),
        }
    }

    pub fn finish(&self) {
        self.total.finish_and_clear();
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

pub struct BlobProgress {
    bar: ProgressBar,
    total: ProgressBar,
}

impl BlobProgress {
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.total.inc(n);
    }

    /// Bytes already there (a resumed download, or a blob the target already had).
    pub fn skip(&self, n: u64) {
        self.bar.inc(n);
        self.total.inc(n);
    }

    /// A restarted transfer: take back what was counted.
    pub fn reset(&self) {
        let done = self.bar.position();
        self.bar.set_position(0);
        self.total
            .set_position(self.total.position().saturating_sub(done));
    }

    /// A `Send` closure that counts bytes, for code running off the async runtime.
    pub fn counter(&self) -> impl Fn(u64) + Send + 'static {
        let bar = self.bar.clone();
        let total = self.total.clone();
        move |n| {
            bar.inc(n);
            total.inc(n);
        }
    }

    pub fn done(&self) {
        self.bar.finish_and_clear();
    }
}
