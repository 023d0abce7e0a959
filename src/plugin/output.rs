//! Where a plugin's words go: results on stdout (in the `--format` asked for), progress and
//! warnings on stderr, so `gdcloud-x … | grep` and `--format json | jq` see only results.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

use super::format::{Format, Kind};

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
    /// A result line for people (the text format; other formats go through [`Output::result`]).
    pub fn line(&self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{text}")
    }

    /// Prints a command's result in the `--format` asked for: `text` runs the command's own
    /// drawing, every other format comes from `value`; for `table`, `value` and `csv` the rows are
    /// the elements of `value` when it is a list, else `value` itself.
    pub fn result<T: Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        self.print(value, None, text)
    }

    /// [`Output::result`] for a result object that wraps its resources in the list `field`
    /// (`{"versions": […], …}`): `value(tag)` prints one line per element of it, while `json`
    /// and `yaml` still print the whole object.
    pub fn resources<T: Serialize + ?Sized>(
        &self,
        value: &T,
        field: &str,
        text: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        self.print(value, Some(field), text)
    }

    fn print<T: Serialize + ?Sized>(
        &self,
        value: &T,
        field: Option<&str>,
        text: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if self.format.kind == Kind::Text {
            return text();
        }
        let value = serde_json::to_value(value).map_err(io::Error::other)?;
        let printed = self.format.render(&value, field).unwrap_or_default();
        let mut out = io::stdout().lock();
        out.write_all(printed.as_bytes())?;
        out.flush()
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
