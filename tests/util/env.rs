//! A private world per test: its own HOME, gdcloud configuration directory, Docker config, runtime
//! dir and PATH holding our freshly built binaries, so tests run in parallel and never touch the
//! developer's real files. Commands are built from it with every variable that could leak in from
//! the outer shell (a desktop session bus, a real DOCKER_CONFIG) cleared.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

pub const HELPER: &str = "docker-credential-gdcloud";
pub const AUTH: &str = "gdcloud-auth";

/// The directory holding this build's binaries (`target/<profile>`), found from the helper's path
/// which cargo gives root-package tests.
pub fn bin_dir() -> PathBuf {
    let helper = PathBuf::from(env!("CARGO_BIN_EXE_docker-credential-gdcloud"));
    let dir = helper.parent().unwrap().to_path_buf();
    for b in [HELPER, AUTH] {
        assert!(
            dir.join(b).exists(),
            "{b} is not built in {}: run `cargo test --workspace` (tests/run.sh does)",
            dir.display()
        );
    }
    dir
}

pub struct TestEnv {
    pub root: TempDir,
    pub home: PathBuf,
    pub config_dir: PathBuf,
    pub docker_config: PathBuf,
    pub runtime_dir: PathBuf,
    /// Extra variables set on every command (e.g. a private session bus).
    pub vars: Vec<(String, String)>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let root = tempfile::Builder::new()
            .prefix("gdk-test-")
            .tempdir()
            .unwrap();
        let home = root.path().join("home");
        let config_dir = home.join(".config/gdcloud");
        let docker_config = home.join(".docker");
        let runtime_dir = root.path().join("run");
        for d in [&home, &runtime_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        TestEnv {
            root,
            home,
            config_dir,
            docker_config,
            runtime_dir,
            vars: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// A command for `program` (one of ours by name, or any tool on the system PATH).
    pub fn cmd(&self, program: &str) -> Command {
        let bins = bin_dir();
        let exe = if program == HELPER || program == AUTH {
            bins.join(program)
        } else {
            PathBuf::from(program)
        };
        let mut c = Command::new(exe);
        for v in [
            "DBUS_SESSION_BUS_ADDRESS",
            "DOCKER_CONFIG",
            "REGISTRY_AUTH_FILE",
            "GDCLOUD_ACTIVE_CONFIG_NAME",
            "DISPLAY",
            "WAYLAND_DISPLAY",
        ] {
            c.env_remove(v);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("GDCLOUD_") {
                c.env_remove(k);
            }
        }
        let path = format!(
            "{}:{}",
            bins.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("HOME", &self.home)
            .env("GDCLOUD_CONFIG", &self.config_dir)
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("PATH", path)
            .current_dir(self.root.path());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// Runs `program args` with `stdin` fed and returns its output.
    pub fn run(&self, program: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut c = self.cmd(program);
        c.args(args);
        run_with_stdin(c, stdin)
    }

    /// Runs the credential helper with the file store.
    pub fn helper(&self, action: &str, stdin: &str) -> Output {
        let mut c = self.cmd(HELPER);
        c.arg(action).env("GDCLOUD_AUTH_CREDENTIAL_STORE", "file");
        run_with_stdin(c, stdin.as_bytes())
    }

    pub fn docker_config_file(&self) -> PathBuf {
        self.docker_config.join("config.json")
    }

    /// Writes a gdcloud property into the default configuration's file.
    pub fn set_property(&self, section: &str, key: &str, value: &str) {
        let file = self.config_dir.join("configurations/config_default");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        text.push_str(&format!("[{section}]\n{key} = {value}\n"));
        std::fs::write(file, text).unwrap();
    }
}

pub fn run_with_stdin(mut c: Command, stdin: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Like [`run_with_stdin`], but kills the command and panics (with what it printed) once it has
/// run for `limit`, so that a hung command fails its test instead of the whole run.
pub fn run_timed(mut c: Command, stdin: &[u8], limit: std::time::Duration) -> Output {
    use std::io::Read;
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!(
        "{:?} {:?}",
        c.get_program(),
        c.get_args().collect::<Vec<_>>()
    );
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out_reader = drain(Box::new(child.stdout.take().unwrap()));
    let err_reader = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the command") {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = out_reader.join().unwrap_or_default();
            let err = err_reader.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {limit:?}:\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout, showing both streams on failure.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts failure with nothing on stdout (stdout carries only results) and returns stderr.
#[track_caller]
pub fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "the command should have failed:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(
        o.stdout.is_empty(),
        "stdout carries only results, but a failed command printed: {}",
        stdout(o)
    );
    stderr(o)
}

/// Asserts [`failed`] with exactly one non-empty line on stderr, `ERROR: …`, and returns it.
#[track_caller]
pub fn error_line(o: &Output) -> String {
    let err = failed(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one error line on stderr, got:\n{err}"
    );
    assert!(lines[0].starts_with("ERROR: "), "{err}");
    lines[0].to_string()
}

/// Installs `source` as an executable at `dest` (mode 0755) through `install(1)`.
///
/// A file this test binary wrote itself can fail to run with ETXTBSY ("Text file busy"): a test on
/// another thread may fork while the write descriptor is open, and its child holds that descriptor
/// until it execs. Having a separate process write the file keeps every descriptor to it out of
/// this multi-threaded process.
pub fn install_executable(source: &Path, dest: &Path) {
    let st = Command::new("install")
        .arg("-m0755")
        .arg(source)
        .arg(dest)
        .status()
        .expect("run install(1)");
    assert!(
        st.success(),
        "install {} {}",
        source.display(),
        dest.display()
    );
}

/// Writes `contents` as an executable script at `path`; see [`install_executable`] for why a
/// child process does the writing.
pub fn write_executable(path: &Path, contents: &str) {
    let staging = path.with_extension("staging");
    std::fs::write(&staging, contents).unwrap();
    install_executable(&staging, path);
    std::fs::remove_file(&staging).unwrap();
}

/// Runs `c` to completion; panics with its output unless it succeeded. Returns its stdout.
pub fn run_ok(c: &mut Command) -> Vec<u8> {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
