//! The one tiny test image (an OCI layout built with `umoci`, tag `v1`, one layer holding
//! `hello.txt`) and the skopeo calls that push it to, and read it from, a test [`Registry`]. The
//! image is built once per test process, because every registry test needs *some* image and
//! building it is the slowest step; pushing is per test, so that registries stay independent.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::registry::{require_tool, Registry};

/// The tag of the image inside the layout.
pub const TAG: &str = "v1";
/// The file the image's only layer adds, and its content.
pub const HELLO_PATH: &str = "hello.txt";
pub const HELLO_CONTENT: &str = "hello from gdcloud-kit tests\n";

static LAYOUT: OnceLock<PathBuf> = OnceLock::new();

/// An OCI image layout holding a tiny image tagged [`TAG`]; built on first use, then shared
/// (read-only) by every test of this process. It lives under Cargo's `CARGO_TARGET_TMPDIR`, not
/// `/tmp`, so leftovers are removed by `cargo clean`.
pub fn tiny_image_layout() -> &'static Path {
    LAYOUT.get_or_init(build_layout).as_path()
}

fn build_layout() -> PathBuf {
    require_tool("umoci");
    let root = tempfile::Builder::new()
        .prefix("tiny-image-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create image temp dir")
        .keep();
    let layout = root.join("oci");
    let bundle = root.join("bundle");
    let image = format!("{}:{TAG}", layout.display());
    umoci(&["init", "--layout", &layout.display().to_string()]);
    umoci(&["new", "--image", &image]);
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &image,
        &bundle.display().to_string(),
    ]);
    std::fs::write(bundle.join("rootfs").join(HELLO_PATH), HELLO_CONTENT).expect("write hello.txt");
    umoci(&["repack", "--image", &image, &bundle.display().to_string()]);
    umoci(&["gc", "--layout", &layout.display().to_string()]);
    std::fs::remove_dir_all(&bundle).expect("remove umoci bundle");
    layout
}

fn umoci(args: &[&str]) {
    let out = Command::new("umoci")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run umoci: {e}; run tests/run.sh"));
    assert!(
        out.status.success(),
        "umoci {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `skopeo` command with a timeout, so a hung registry fails the test instead of hanging it.
pub fn skopeo_cmd() -> Command {
    require_tool("skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.args(["--command-timeout", "120s"]);
    cmd
}

/// Pushes the tiny image to `reg` as `repo:tag` (with the registry's user, verifying TLS against
/// its certificate). Panics with skopeo's stderr on failure.
pub fn seed_image(reg: &Registry, repo: &str, tag: &str) {
    let layout = tiny_image_layout();
    let src = format!("oci:{}:{TAG}", layout.display());
    let dest = format!("docker://{}/{repo}:{tag}", reg.host);
    let out = skopeo_cmd()
        .args(["copy", "--dest-creds", &reg.creds()])
        .arg(reg.skopeo_tls_flag("dest-"))
        .args([&src, &dest])
        .output()
        .expect("run skopeo copy");
    assert!(
        out.status.success(),
        "skopeo copy {src} {dest} failed ({}):\n{}\nregistry log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        reg.log()
    );
}

/// `skopeo inspect docker://HOST/reference` (reference = `repo:tag`) with `creds`
/// (`Some(("user", "pass"))`) or anonymously (`None`, skopeo's `--no-creds`); returns the raw
/// output, so tests can assert on failures too.
pub fn skopeo_inspect(reg: &Registry, reference: &str, creds: Option<(&str, &str)>) -> Output {
    let mut cmd = skopeo_cmd();
    cmd.arg("inspect").arg(reg.skopeo_tls_flag(""));
    match creds {
        Some((u, p)) => cmd.args(["--creds", &format!("{u}:{p}")]),
        None => cmd.arg("--no-creds"),
    };
    cmd.arg(format!("docker://{}/{reference}", reg.host))
        .output()
        .expect("run skopeo inspect")
}

/// `podman ARGS` with a private vfs store under the test's directory (run from there, so
/// `oci:RELATIVE:TAG` names stay lower-case as podman wants), bounded by five minutes.
pub fn podman(env: &super::env::TestEnv, args: &[&str]) -> Output {
    require_tool("podman");
    let mut c = env.cmd("podman");
    c.arg("--storage-driver=vfs")
        .arg(format!(
            "--root={}",
            env.path().join("podman-root").display()
        ))
        .arg(format!(
            "--runroot={}",
            env.path().join("podman-runroot").display()
        ))
        .args(["--cgroup-manager=cgroupfs", "--events-backend=none"])
        .args(args);
    super::env::run_timed(c, b"", std::time::Duration::from_secs(300))
}
