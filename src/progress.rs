//! How long operations report progress, without knowing who draws it: the plugins implement
//! [`Progress`] with terminal bars (`plugin::progress`), tests and library users pass [`Hidden`].
//! Keeping this a trait is what lets the core build without a terminal library.

use std::sync::Arc;

/// Progress of one operation: a running total and one bar per transferred object, and the notices
/// worth a line on the way.
pub trait Progress: Send + Sync {
    /// Adds `bytes` to the expected total.
    fn expect(&self, bytes: u64);
    /// A bar for one object (a blob, an S3 object) of `size` bytes, labelled `name`.
    fn blob(&self, name: &str, size: u64) -> Arc<dyn BlobProgress>;
    /// The operation ended: clear what was drawn.
    fn finish(&self);
    /// A line for the user while the operation runs (it waits for something, say): shown on
    /// stderr by the plugins, dropped by [`Hidden`].
    fn notice(&self, _line: &str) {}
}

/// Progress of one object; every count also moves the operation's total.
pub trait BlobProgress: Send + Sync {
    /// Bytes transferred.
    fn inc(&self, n: u64);
    /// Bytes already there (a resumed download, or a blob the target already had).
    fn skip(&self, n: u64) {
        self.inc(n);
    }
    /// A restarted transfer: take back what was counted.
    fn reset(&self);
    /// The object is complete.
    fn done(&self);
}

/// A `Send` closure that counts bytes into `bar`, for code running off the async runtime.
pub fn counter(bar: &Arc<dyn BlobProgress>) -> impl Fn(u64) + Send + 'static {
    let bar = Arc::clone(bar);
    move |n| bar.inc(n)
}

/// Reports nothing: for scripts, tests and library callers that draw no bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hidden;

impl Progress for Hidden {
    fn expect(&self, _: u64) {}
    fn blob(&self, _: &str, _: u64) -> Arc<dyn BlobProgress> {
        Arc::new(Hidden)
    }
    fn finish(&self) {}
}

impl BlobProgress for Hidden {
    fn inc(&self, _: u64) {}
    fn reset(&self) {}
    fn done(&self) {}
}
