//! `--verbosity debug`: the decisions the core takes (which configuration it loaded and why, where
//! a registry's credentials came from, retries, what the cluster named), told to a sink the plugin
//! installs. The core never prints (house rule 7); without a sink these calls cost one atomic load.
//! Callers pass only what is safe to show: names, paths, sources and statuses, never a secret.

use std::fmt;
use std::sync::OnceLock;

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends every later [`log`] line to `sink` (the plugin's `DEBUG:` writer). The first sink set
/// stays for the life of the process.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

/// Whether anyone listens (to skip building a costly line).
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// One decision, as a line.
pub fn log(line: fmt::Arguments<'_>) {
    if let Some(sink) = SINK.get() {
        sink(&line.to_string());
    }
}
