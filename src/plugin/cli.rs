//! The clap side of the plugin plumbing: global flags every plugin accepts anywhere on the command
//! line, the argument groups several commands share (cluster, TLS, registry login), the one async
//! runtime builder, shell completion, and the `main` wrapper that prints one error line and picks
//! the exit code. Plugins declare their own flags and flatten these; everything here turns flags
//! into the options structs of `ops`, so a plugin never names a core type beyond `ops`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::format::Format;
use super::output::{Output, Verbosity};
use crate::config::Config;
use crate::http::TlsOptions;
use crate::oci::Platform;
use crate::registry::auth::Credentials;
use crate::registry::ClientOptions;
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerbosityArg {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    #[value(name = "powershell")]
    PowerShell,
}

/// Flags gdcloud accepts on every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Named configuration to use for this invocation (default: the active one).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "GDCLOUD_ACTIVE_CONFIG_NAME",
        hide_env = true
    )]
    pub configuration: Option<String>,
    /// Output format of results on stdout: text (the default), json, yaml, none, or gcloud's
    /// projections table(KEY,…), value(KEY,…), csv(KEY,…), e.g. 'value(tag)',
    /// 'csv[no-heading](name,is_active)', 'table(name, tags.list():label=TAGS)'.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = FormatParser, default_value = "text")]
    pub format: Format,
    /// Disable progress and status messages; never prompt.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// How much to log on stderr.
    #[arg(long, global = true, value_enum, default_value = "warning")]
    pub verbosity: VerbosityArg,
    /// Log HTTP requests and responses on stderr (credentials redacted).
    #[arg(long, global = true)]
    pub log_http: bool,
}

impl GlobalArgs {
    pub fn output(&self) -> Output {
        if self.verbosity == VerbosityArg::Debug {
            crate::debug::set_sink(|line| eprintln!("DEBUG: {line}"));
        }
        let verbosity = match self.verbosity {
            VerbosityArg::Debug => Verbosity::Debug,
            VerbosityArg::Info => Verbosity::Info,
            VerbosityArg::Warning => Verbosity::Warning,
            VerbosityArg::Error => Verbosity::Error,
            VerbosityArg::Critical => Verbosity::Critical,
            VerbosityArg::None => Verbosity::None,
        };
        Output {
            format: self.format.clone(),
            quiet: self.quiet,
            verbosity,
        }
    }
}

/// `--format`: parsed by [`Format::parse`] (its error names what is accepted); the format names
/// are offered to shell completion.
#[derive(Debug, Clone, Copy)]
struct FormatParser;

impl clap::builder::TypedValueParser for FormatParser {
    type Value = Format;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Format, clap::Error> {
        let parse = |s: &str| Format::parse(s).map_err(|e| e.to_string());
        parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        let names = ["text", "json", "yaml", "none", "table", "value", "csv"];
        Some(Box::new(
            names.into_iter().map(clap::builder::PossibleValue::new),
        ))
    }
}

impl GlobalArgs {
    /// The configuration `--configuration` names (else the active one).
    pub fn config(&self) -> Result<Config, crate::config::Error> {
        Config::load(self.configuration.as_deref())
    }
}

/// The async runtime every networked command runs on (one per process, all cores).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Which cluster to ask (registry discovery, bucket keys, Harbor's admin login).
#[derive(Debug, Clone, Default, Args)]
pub struct KubeArgs {
    /// The kubeconfig (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl KubeArgs {
    pub fn options(&self) -> crate::kube::Options {
        crate::kube::Options {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

/// How to trust the registry's TLS.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Skip TLS verification and allow plain HTTP (use only for testing).
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA (PEM) for the registry, besides the system roots and certs.d.
    #[arg(long, value_name = "FILE")]
    pub ca_cert_path: Option<PathBuf>,
}

impl TlsArgs {
    pub fn options(&self, global: &GlobalArgs) -> TlsOptions {
        TlsOptions {
            insecure: self.insecure,
            ca_files: self.ca_cert_path.iter().cloned().collect(),
            log_http: global.log_http,
        }
    }
}

/// Flags every command that talks to a registry shares.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Log in as USER (the password is read from stdin with --password-stdin).
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password for --username from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    /// The registry client's options; reads the password from stdin when `--password-stdin`.
    pub fn client_options(&self, global: &GlobalArgs) -> anyhow::Result<ClientOptions> {
        let credentials = match &self.username {
            Some(user) => Some(Credentials::Basic {
                username: user.clone(),
                password: password_from_stdin()?,
            }),
            None => None,
        };
        Ok(ClientOptions {
            tls: self.tls.options(global),
            credentials,
            debug: global.verbosity == VerbosityArg::Debug,
            plain_http: false,
        })
    }
}

/// The warning for a reference written `http://HOST/…`, which the registry client honours by
/// speaking plain HTTP to HOST: images and credentials then cross the network unencrypted, and
/// the user should know that was their choice.
pub fn plain_http_warning(reference: &str) -> Option<String> {
    if crate::host::written_as_path(reference) {
        return None;
    }
    let (rest, plain) = crate::host::strip_scheme(reference);
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    plain.then(|| {
        format!("{reference} asks for plain HTTP: {host} is reached without TLS, so images and credentials cross the network unencrypted; write https:// or HOST/… to use TLS")
    })
}

/// Prints [`plain_http_warning`] for `reference` on stderr, if it applies.
pub fn warn_plain_http(out: &Output, reference: &str) {
    if let Some(w) = plain_http_warning(reference) {
        out.warn(&w);
    }
}

/// The password piped in for `--password-stdin`, without its line end; never empty.
fn password_from_stdin() -> anyhow::Result<Secret> {
    // Bounded like every read of outside data: more than a token's size is refused, not cut.
    let bytes = crate::bounded::read(
        std::io::stdin().lock(),
        crate::bounded::TOKEN,
        "the password on stdin",
    )
    .map_err(|e| anyhow::anyhow!("read the password from stdin: {e}"))?;
    let password = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("--password-stdin read a password that is not UTF-8"))?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("--password-stdin read an empty password; pipe the password in, e.g. `echo \"$PW\" | gdcloud artifacts … --password-stdin`");
    }
    Ok(Secret::new(password))
}

/// `--platform OS/ARCH[/VARIANT]`.
pub fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s).ok_or_else(|| format!("{s:?} is not OS/ARCH[/VARIANT], e.g. linux/amd64"))
}

/// The metadata of a plugin whose command line is `cmd`: its visible subcommands and their help.
pub fn metadata(cmd: &clap::Command, short_description: &'static str) -> super::Metadata {
    super::Metadata {
        schema_version: super::SCHEMA_VERSION,
        vendor: super::VENDOR,
        version: crate::VERSION,
        short_description,
        commands: cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| super::CommandInfo {
                name: c.get_name().to_string(),
                short_description: c.get_about().map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect(),
    }
}

/// Prints `metadata` as one JSON line (what `gdcloud-<group> gdcloud-plugin-metadata` answers).
pub fn print_metadata(metadata: &super::Metadata) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(metadata)?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)?;
    out.flush()
}

/// Writes the completion script for `shell` to stdout, for the command `cmd` names (its
/// `bin_name`, what the user types: `gdcloud-artifacts`).
pub fn completion(shell: Shell, cmd: &mut clap::Command) -> std::io::Result<()> {
    let script = completion_script(shell, cmd);
    let mut out = std::io::stdout().lock();
    out.write_all(script.as_bytes())?;
    out.flush()
}

/// The completion script for `shell`. Bash is generated for a name without `-` and registered for
/// the real one: clap_complete spells a hyphenated program name one way in its dispatcher
/// (`gdcloud__artifacts__subcmd__pull`) and another in its case labels
/// (`gdcloud__subcmd__artifacts__subcmd__pull`), so nothing below the top level ever completed
/// (clap-rs/clap#6421). Without a `-` both spellings agree.
pub fn completion_script(shell: Shell, cmd: &mut clap::Command) -> String {
    let bin = cmd
        .get_bin_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let (generator, name) = match shell {
        Shell::Bash => (clap_complete::Shell::Bash, bin.replace('-', "_")),
        Shell::Zsh => (clap_complete::Shell::Zsh, bin.clone()),
        Shell::Fish => (clap_complete::Shell::Fish, bin.clone()),
        Shell::PowerShell => (clap_complete::Shell::PowerShell, bin.clone()),
    };
    // Generated into memory first: clap_complete panics on a write error, and `| head` is normal.
    let mut script = Vec::new();
    clap_complete::generate(generator, cmd, &name, &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    if name == bin {
        return script;
    }
    // Only the `complete -F _fn … NAME` registrations name the program; register the real name.
    let suffix = format!(" {name}");
    script
        .lines()
        .map(|line| match line.trim_start().starts_with("complete -F ") {
            true => match line.strip_suffix(&suffix) {
                Some(head) => format!("{head} {bin}\n"),
                None => format!("{line}\n"),
            },
            false => format!("{line}\n"),
        })
        .collect()
}

/// Writes `<bin>.1` for the whole command and `<bin>-<sub>.1` for each visible subcommand into
/// `dir`, from the same clap definitions `--help` prints, so the pages never drift from the flags.
pub fn write_man_pages(
    mut cmd: clap::Command,
    dir: &std::path::Path,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // Building names each subcommand `<bin>-<sub>` (its display name), the title of its page.
    cmd.build();
    let mut written = Vec::new();
    man_page(&cmd, dir, &mut written)?;
    Ok(written)
}

fn man_page(
    cmd: &clap::Command,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    let path = dir.join(man.get_filename());
    crate::atomic::write(&path, &roff, 0o644)?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            man_page(sub, dir, written)?;
        }
    }
    Ok(())
}

/// What `version` prints with `--format json`.
#[derive(Debug, serde::Serialize)]
struct VersionInfo<'a> {
    version: &'a str,
    binary: &'a str,
}

/// The subcommands every plugin has, flattened into each plugin's own command enum
/// (`#[command(flatten)] Builtin(cli::Builtin)`).
#[derive(Debug, clap::Subcommand)]
pub enum Builtin {
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print this program's name and version (`--format json`: {"version", "binary"};
    /// `--format 'value(version)'`: the version alone).
    Version,
    /// Write man pages (this program's and one per command) into DIR and print their paths;
    /// what install.sh installs.
    #[command(hide = true)]
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print plugin metadata for the gdcloud host (JSON).
    #[command(name = super::METADATA_COMMAND, hide = true)]
    Metadata,
}

impl Builtin {
    /// Runs it for the plugin whose whole command line is `C`, described by `about`.
    pub fn run<C: clap::CommandFactory>(
        self,
        about: &'static str,
        global: &GlobalArgs,
    ) -> std::io::Result<ExitCode> {
        match self {
            Builtin::Completion { shell } => completion(shell, &mut C::command())?,
            Builtin::Version => {
                let cmd = C::command();
                let binary = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
                let out = global.output();
                let info = VersionInfo {
                    version: crate::VERSION,
                    binary,
                };
                out.result(&info, || out.line(&format!("{binary} {}", crate::VERSION)))?;
            }
            Builtin::Man { dir } => {
                let out = global.output();
                for page in write_man_pages(C::command(), &dir)? {
                    out.line(&page.display().to_string())?;
                }
            }
            Builtin::Metadata => print_metadata(&metadata(&C::command(), about))?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The error chain as one line. Causes whose text an outer message already quotes (typed errors
/// that print `{source}` and also expose it as their source) are not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// Runs a plugin's `run` and turns its result into an exit code: the error chain as one line on
/// stderr (`ERROR: …`), a closed stdout (`| head`) counted as success.
pub fn main(run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    // Error paths should cost milliseconds, not the ~80 ms a captured backtrace takes when the
    // machine sets RUST_BACKTRACE=1; a developer can still ask with RUST_LIB_BACKTRACE=1.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    match run() {
        Ok(code) => code,
        Err(e) => {
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.to_string().contains("Broken pipe")
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "ERROR: {}",
                super::Invocation::current().spell(&one_line(&e))
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("read CA certificate ca.crt: {source}")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn plain_http_is_warned_about() {
        let w = plain_http_warning("http://h.io:5000/p/r:1").unwrap();
        assert!(w.contains("h.io:5000") && w.contains("plain HTTP"), "{w}");
        assert!(plain_http_warning("HTTP://h.io/p/r").is_some());
        assert_eq!(plain_http_warning("https://h.io/p/r"), None);
        assert_eq!(plain_http_warning("h.io/p/r"), None);
        assert_eq!(plain_http_warning("./http://x"), None);
        assert_eq!(plain_http_warning("http://"), None);
    }

    #[test]
    fn causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(Outer { source: io }).context("login");
        assert_eq!(
            one_line(&e),
            "login: read CA certificate ca.crt: No such file"
        );
    }
}
