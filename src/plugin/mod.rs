//! gdcloud plugin plumbing shared by every `gdcloud-<group>` binary: how a host finds and runs a
//! plugin, the metadata a plugin reports, the global flags, and where output goes.
//!
//! A plugin is an executable `gdcloud-<group>` on `PATH` or in `<gdcloud config dir>/plugins`;
//! `gdcloud <group> <command> [args]` runs `gdcloud-<group> <command> [args]` with `GDCLOUD_CONFIG`
//! and `GDCLOUD_ACTIVE_CONFIG_NAME` set, and the same binary works when a person runs it directly.

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod format;
#[cfg(feature = "cli")]
pub mod output;
#[cfg(feature = "cli")]
pub mod progress;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

/// Outside text (keys, names, media types) made safe for a terminal.
pub use crate::text::Escaped;
#[cfg(feature = "cli")]
pub use format::Format;
#[cfg(feature = "cli")]
pub use output::Output;

/// The metadata schema a host understands.
pub const SCHEMA_VERSION: &str = "0.1.0";
pub const VENDOR: &str = "gdcloud-kit";

/// What `gdcloud-<group> gdcloud-plugin-metadata` prints: fixed data, no side effects.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metadata {
    pub schema_version: &'static str,
    pub vendor: &'static str,
    pub version: &'static str,
    pub short_description: &'static str,
    pub commands: Vec<CommandInfo>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommandInfo {
    pub name: String,
    pub short_description: String,
}

/// The hidden command a host runs to learn about a plugin.
pub const METADATA_COMMAND: &str = "gdcloud-plugin-metadata";

/// Where a host looks for `gdcloud-<group>`: the gdcloud `plugins` folder first (what the user
/// installed for gdcloud), then `PATH`.
pub fn locate(group: &str, config_dir: &Path) -> Option<PathBuf> {
    let name = format!("gdcloud-{group}");
    let plugins = config_dir.join("plugins");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(plugins)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(&name))
        .find(|p| is_executable(p))
}

/// A regular file someone may execute (what `PATH` lookup accepts).
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The command a host runs for `gdcloud <group> args…`: the plugin with the host's configuration
/// directory and active configuration passed down, so both read the same properties.
pub fn command<I, S>(plugin: &Path, config_dir: &Path, configuration: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(plugin);
    cmd.args(args)
        .env("GDCLOUD_CONFIG", config_dir)
        .env("GDCLOUD_ACTIVE_CONFIG_NAME", configuration);
    cmd
}

/// Our command groups, each also a binary `gdcloud-<group>`.
const GROUPS: [&str; 4] = ["auth", "storage", "artifacts", "config"];

/// How this process was started: `gdcloud-<group>` typed by the user (argv[0]), or by a gdcloud
/// host, which always passes the active configuration down (see [`command`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// `gdcloud <group> …`: hints keep the host's spelling.
    Host,
    /// `gdcloud-<group> …`: hints name the plugin binaries.
    Direct,
}

impl Invocation {
    /// Decided once per process from argv[0] and the host's variable; the core never asks.
    pub fn current() -> Invocation {
        static CURRENT: std::sync::OnceLock<Invocation> = std::sync::OnceLock::new();
        *CURRENT.get_or_init(|| {
            let argv0 = std::env::args_os().next().unwrap_or_default();
            Invocation::from(
                Path::new(&argv0).file_name().unwrap_or_default(),
                std::env::var_os("GDCLOUD_ACTIVE_CONFIG_NAME").is_some(),
            )
        })
    }

    fn from(program: &OsStr, host_vars: bool) -> Invocation {
        let direct = program
            .to_str()
            .and_then(|p| p.strip_prefix("gdcloud-"))
            .is_some_and(|g| GROUPS.contains(&g));
        if direct && !host_vars {
            Invocation::Direct
        } else {
            Invocation::Host
        }
    }

    /// `text` with each quoted command (`` `gdcloud storage configure` ``) spelled the way this
    /// process was run, so a hint works as typed: `` `gdcloud-storage configure` `` when the user
    /// ran the plugin binary. The core writes the host's spelling once; this is the only rewrite.
    pub fn spell(self, text: &str) -> String {
        if self == Invocation::Host {
            return text.to_string();
        }
        let mut out = text.to_string();
        for g in GROUPS {
            for before in ["`", "run: ", "| "] {
                out = out.replace(
                    &format!("{before}gdcloud {g} "),
                    &format!("{before}gdcloud-{g} "),
                );
            }
        }
        out
    }
}

/// Every `gdcloud-*` plugin a host would find, first occurrence of each name winning.
pub fn list(config_dir: &Path) -> Vec<(String, PathBuf)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for dir in std::iter::once(config_dir.join("plugins")).chain(std::env::split_paths(&path)) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let Some(group) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("gdcloud-"))
            else {
                continue;
            };
            if is_executable(&p) && !found.iter().any(|(g, _)| g == group) {
                found.push((group.to_string(), p));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_spelled_as_the_user_ran_the_tool() {
        let hint = "run `gdcloud storage configure` or `gdcloud config set a/b V`; `gdcloud clusters x`; run: gdcloud auth login";
        let direct = Invocation::from(OsStr::new("gdcloud-artifacts"), false);
        assert_eq!(direct, Invocation::Direct);
        assert_eq!(
            direct.spell(hint),
            "run `gdcloud-storage configure` or `gdcloud-config set a/b V`; `gdcloud clusters x`; run: gdcloud-auth login"
        );
        let host = Invocation::from(OsStr::new("gdcloud-artifacts"), true);
        assert_eq!(host.spell(hint), hint);
        assert_eq!(
            Invocation::from(OsStr::new("docker-credential-gdcloud"), false),
            Invocation::Host
        );
    }
}
