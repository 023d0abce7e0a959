//! Progress bars on stderr for long transfers: one bar per blob and a total, drawn only when stderr
//! is a terminal and `--quiet` was not given (otherwise every call is a no-op), so operations can
//! report progress unconditionally and stdout stays for results.

use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::Hidden;
/// The traits the ops report through, for plugins that pass on or add to what is drawn.
pub use crate::progress::{BlobProgress, Progress};

/// Bars drawn on stderr; when progress is off, [`new`] hands out [`Hidden`] instead.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
}

/// Bars on stderr when `enabled` (see [`super::Output::progress_enabled`]), else nothing at all.
pub fn new(enabled: bool, total_label: &str) -> Box<dyn Progress> {
    if enabled {
        Box::new(Bars::stderr(total_label))
    } else {
        Box::new(Hidden)
    }
}

fn bytes_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Bars {
    /// Bars drawn on stderr.
    pub fn stderr(total_label: &str) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let total = multi.add(ProgressBar::new(0));
        total.set_style(bytes_style(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
        ));
        total.set_prefix(total_label.to_string());
        Bars { multi, total }
    }
}

impl Progress for Bars {
    fn expect(&self, bytes: u64) {
        self.total.inc_length(bytes);
    }

    fn blob(&self, name: &str, size: u64) -> Arc<dyn BlobProgress> {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(bytes_style(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ));
        bar.set_prefix(name.to_string());
        Arc::new(Bar {
            bar,
            total: self.total.clone(),
        })
    }

    fn finish(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }

    fn notice(&self, line: &str) {
        // Above the bars, which are redrawn below it.
        let _ = self.multi.println(line);
    }
}

/// One object's bar; counts also move the total.
struct Bar {
    bar: ProgressBar,
    total: ProgressBar,
}

impl BlobProgress for Bar {
    fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.total.inc(n);
    }

    fn reset(&self) {
        let done = self.bar.position();
        self.bar.set_position(0);
        self.total
            .set_position(self.total.position().saturating_sub(done));
    }

    fn done(&self) {
        self.bar.finish_and_clear();
    }
}
