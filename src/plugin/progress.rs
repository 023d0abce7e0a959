//! Progress bars on stderr for long transfers: one bar per blob and a total, drawn only when stderr
//! is a terminal and `--quiet` was not given (otherwise every call is a no-op), so operations can
//! report progress unconditionally and stdout stays for results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::Hidden;
/// The traits the ops report through, for plugins that pass on or add to what is drawn.
pub use crate::progress::{BlobProgress, Progress};

/// Bars drawn on stderr; when progress is off, [`new`] hands out [`Hidden`] instead.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    /// Whether the total has a length yet (it starts as a counter, see [`UNSIZED`]).
    sized: AtomicBool,
}

/// Bars on stderr when `enabled` (see [`super::Output::progress_enabled`]), else nothing at all.
pub fn new(enabled: bool, total_label: &str) -> Box<dyn Progress> {
    if enabled {
        Box::new(Bars::stderr(total_label))
    } else {
        Box::new(Hidden)
    }
}

/// A bar whose length is known: filled in proportion.
const SIZED: &str = "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";
/// A length of 0 means "not known yet": indicatif would draw such a bar full at `0 B/0 B`, so it is
/// a spinner and a byte count until a length arrives.
const UNSIZED: &str = "{prefix:>12} {spinner} {bytes} {bytes_per_sec}";

/// The template for a bar of `len` bytes (`elapsed` for the total).
fn template(len: u64, elapsed: bool) -> String {
    let base = if len == 0 { UNSIZED } else { SIZED };
    if elapsed {
        format!("{base} {{elapsed}}")
    } else {
        base.to_string()
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
        Bars::on(ProgressDrawTarget::stderr_with_hz(8), total_label)
    }

    fn on(target: ProgressDrawTarget, total_label: &str) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(0));
        total.set_style(bytes_style(&template(0, true)));
        total.set_prefix(total_label.to_string());
        Bars {
            multi,
            total,
            sized: AtomicBool::new(false),
        }
    }
}

impl Progress for Bars {
    fn expect(&self, bytes: u64) {
        self.total.inc_length(bytes);
        if bytes > 0 && !self.sized.swap(true, Ordering::Relaxed) {
            self.total.set_style(bytes_style(&template(bytes, true)));
        }
    }

    fn blob(&self, name: &str, size: u64) -> Arc<dyn BlobProgress> {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(bytes_style(&template(size, false)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A terminal in memory: what indicatif wrote, line by line.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.write_line(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn drawn(screen: &Screen) -> String {
        screen.0.lock().unwrap().join("\n")
    }

    #[test]
    fn a_bar_without_a_length_is_not_drawn_full() {
        let screen = Screen::default();
        let bars = Bars::on(
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
            "total",
        );
        bars.total.tick();
        let unknown = bars.blob("blob", 0);
        bars.total.tick();
        let before = drawn(&screen);
        assert!(before.contains("total"), "{before}");
        assert!(!before.contains("[="), "drawn full at 0 B/0 B: {before}");
        assert!(!before.contains("0 B/0 B"), "{before}");
        unknown.done();

        bars.expect(1000);
        let blob = bars.blob("sized", 1000);
        blob.inc(500);
        bars.total.tick();
        let after = drawn(&screen);
        assert!(
            after.contains("500 B/1000 B"),
            "a bar once the length is known: {after}"
        );
        bars.finish();
    }
}
