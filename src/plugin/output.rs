//! Where a plugin's words go: results on stdout (text or JSON), progress and warnings on stderr, so
//! `gdcloud-x … | grep` and `--format json | jq` see only results.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// gcloud's verbosity levels; `warning` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    Debug,
    Info,
    #[default]
    Warning,
    Error,
    Critical,
    None,
}

impl Verbosity {
    pub fn parse(s: &str) -> Option<Verbosity> {
        Some(match s {
            "debug" => Verbosity::Debug,
            "info" => Verbosity::Info,
            "warning" => Verbosity::Warning,
            "error" => Verbosity::Error,
            "critical" => Verbosity::Critical,
            "none" => Verbosity::None,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Output {
    pub format: Format,
    pub quiet: bool,
    pub verbosity: Verbosity,
}

impl Output {
    /// A result line for people (text format only; JSON callers use [`Output::json`]).
    pub fn line(&self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{text}")
    }

    pub fn json<T: Serialize>(&self, value: &T) -> io::Result<()> {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)
    }

    /// A status message on stderr, silenced by `--quiet`.
    pub fn status(&self, text: &str) {
        if !self.quiet && self.verbosity <= Verbosity::Warning {
            eprintln!("{text}");
        }
    }

    /// A warning on stderr; only `--verbosity error` or higher hides it.
    pub fn warn(&self, text: &str) {
        if self.verbosity <= Verbosity::Warning {
            eprintln!("WARNING: {}", super::Invocation::current().spell(text));
        }
    }

    pub fn debug(&self, text: &str) {
        if self.verbosity <= Verbosity::Debug {
            eprintln!("DEBUG: {text}");
        }
    }

    /// Whether progress bars may be drawn: stderr is a terminal and nobody asked for quiet.
    pub fn progress_enabled(&self) -> bool {
        !self.quiet && io::stderr().is_terminal()
    }
}
