//! Messages that lead somewhere (issue 10): each failure names the exact next step, and the step
//! works as typed — these tests run the command a hint names and check that it fixes the failure.
//! Also what a user sees besides errors: `--verbosity debug` lines and `extract`'s progress.

use crate::util;

use std::path::PathBuf;
use std::process::Output;

use util::env::*;
use util::image::{skopeo_cmd, tiny_image_layout, TAG};
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

fn artifacts(env: &TestEnv, args: &[&str]) -> Output {
    env.run("gdcloud-artifacts", args, b"")
}

/// The text between the backticks that start with `prefix` in `line`.
#[track_caller]
fn quoted_command(line: &str, prefix: &str) -> String {
    let start = line
        .find(&format!("`{prefix}"))
        .unwrap_or_else(|| panic!("no `{prefix}…` in: {line}"));
    let rest = &line[start + 1..];
    rest[..rest.find('`').expect("closing backtick")].to_string()
}

/// The `certs.d/<host>` directories `configure-docker --config-cert` writes for this user,
/// removed when the test ends (as root they are the system ones).
struct CertsDirs(Vec<PathBuf>);

impl CertsDirs {
    fn new(env: &TestEnv, host: &str) -> CertsDirs {
        use std::os::unix::fs::MetadataExt;
        let roots = if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            vec![
                PathBuf::from("/etc/docker/certs.d"),
                PathBuf::from("/etc/containers/certs.d"),
            ]
        } else {
            vec![
                env.home.join(".docker/certs.d"),
                env.home.join(".config/containers/certs.d"),
            ]
        };
        CertsDirs(roots.into_iter().map(|r| r.join(host)).collect())
    }
}

impl Drop for CertsDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// An unknown CA: Go's words for it, what was checked, and a configure-docker command that, run
/// exactly as printed (FILE being the CA), makes the same command work.
#[test]
fn unknown_ca_says_x509_and_its_command_works_as_typed() {
    require_tool("skopeo");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, true));
    let ca = reg.ca_cert.clone().unwrap();
    run_ok(
        skopeo_cmd()
            .args(["copy", "--dest-creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag("dest-"))
            .arg(format!("oci:{}:{TAG}", tiny_image_layout().display()))
            .arg(format!("docker://{}/proj/app:{TAG}", reg.host)),
    );
    let mut env = TestEnv::new();
    env.vars
        .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    let msg = serde_json::json!({"ServerURL": reg.host, "Username": reg.username, "Secret": reg.password});
    ok(&env.helper("store", &msg.to_string()));
    let _certs = CertsDirs::new(&env, &reg.host);
    let repo = format!("{}/proj/app", reg.host);

    let e = error_line(&artifacts(&env, &["list-versions", &repo]));
    assert!(
        e.contains("x509: certificate signed by unknown authority"),
        "Go's words: {e}"
    );
    assert!(
        e.contains(&format!("checked {} against the system roots", reg.host)),
        "says what was checked: {e}"
    );
    let fix = quoted_command(&e, "gdcloud-auth configure-docker");
    assert_eq!(
        fix,
        format!(
            "gdcloud-auth configure-docker --config-cert --ca-cert-path FILE --registries {}",
            reg.host
        ),
        "names the binary the user ran and the registry: {e}"
    );

    let args: Vec<String> = fix
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "FILE" {
                ca.display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&env.run(AUTH, &args, b""));
    let tags = ok(&artifacts(&env, &["list-versions", &repo]));
    assert!(tags.contains(TAG), "trusted after the fix: {tags}");
}

/// `--verbosity debug` tells the decisions on stderr (`DEBUG:` lines): the configuration and where
/// it came from, where the registry's credentials came from, each retry; never the secret. Without
/// it, not one DEBUG line.
#[test]
fn verbosity_debug_tells_the_decisions_and_no_secret() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use util::hostile::{Hostile, Reply};
    const SECRET: &str = "s3cr3t-Pa55-never-shown";
    use sha2::{Digest as _, Sha256};
    let config = br#"{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", hex::encode(Sha256::digest(&config))),
            "size": config.len(),
        },
        "layers": [],
    });
    let failures = std::sync::Arc::new(AtomicUsize::new(0));
    let seen_failures = failures.clone();
    let server = Hostile::start(move |req| match req.path() {
        "/v2/" => Reply::new(200),
        "/v2/proj/app/manifests/1.0" => Reply::new(200)
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string().into_bytes()),
        p if p.starts_with("/v2/proj/app/blobs/") => Reply::new(200).body(config.clone()),
        "/v2/proj/app/tags/list"
            if seen_failures
                .fetch_add(1, Ordering::SeqCst)
                .is_multiple_of(2) =>
        {
            Reply::new(503).header("Retry-After", "0")
        }
        "/v2/proj/app/tags/list" => Reply::json(
            200,
            &serde_json::json!({"name": "proj/app", "tags": ["1.0"]}),
        ),
        _ => Reply::new(404),
    });
    let mut env = TestEnv::new();
    env.vars
        .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    ok(&env.run(
        AUTH,
        &["configure-docker", "--registries", &server.addr],
        b"",
    ));
    let msg = serde_json::json!({"ServerURL": server.addr, "Username": "robot", "Secret": SECRET});
    ok(&env.helper("store", &msg.to_string()));
    let repo = format!("http://{}/proj/app", server.addr);

    let o = artifacts(&env, &["list-versions", &repo, "--verbosity", "debug"]);
    assert!(ok(&o).starts_with("1.0\t"), "{}", stdout(&o));
    let err = stderr(&o);
    let debug: Vec<&str> = err.lines().filter(|l| l.starts_with("DEBUG: ")).collect();
    let has = |what: &str| debug.iter().any(|l| l.contains(what));
    assert!(
        has(&format!(
            "configuration directory {} (from GDCLOUD_CONFIG)",
            env.config_dir.display()
        )),
        "{err}"
    );
    assert!(
        has("configuration default (") && has("from active_config (else default)"),
        "{err}"
    );
    assert!(
        has(&format!(
            "registry {}: a username and password from credHelpers[",
            server.addr
        )),
        "{err}"
    );
    assert!(
        has("tags/list") && has("HTTP 503 (attempt 1 of 4); retrying in 0 ms"),
        "{err}"
    );
    assert!(
        !err.contains(SECRET) && !stdout(&o).contains(SECRET),
        "{err}"
    );

    let o = artifacts(&env, &["list-versions", &repo]);
    assert!(ok(&o).starts_with("1.0\t"), "{}", stdout(&o));
    assert!(!stderr(&o).contains("DEBUG"), "{}", stderr(&o));
}

/// A `--context` the kubeconfig lacks is named as such, with the contexts there are (escaped), and
/// no suggestion of --kubeconfig; an API server whose certificate the kubeconfig's CA does not
/// vouch for is an x509 error naming what was checked and how to get a good kubeconfig.
#[test]
fn wrong_context_lists_the_contexts_and_an_untrusted_api_server_says_x509() {
    use base64::Engine as _;
    use util::kube::{KubeCluster, TestCa, ADMIN};
    let cluster = KubeCluster::start();
    let env = TestEnv::new();
    let good = std::fs::read_to_string(cluster.kubeconfig_for(ADMIN)).unwrap();
    let with_hostile = good.replace(
        "contexts:\n",
        "contexts:\n- name: \"red\\u001b[31m\"\n  context:\n    cluster: gdtest\n    user: \"admin\"\n",
    );
    let kc = env.path().join("two.kubeconfig");
    std::fs::write(&kc, with_hostile).unwrap();
    let kc = kc.to_str().unwrap();

    let e = error_line(&env.run(
        "gdcloud-storage",
        &["configure", "--kubeconfig", kc, "--context", "nope"],
        b"",
    ));
    assert!(
        e.contains(&format!(
            "the kubeconfig {kc} has no context nope: pass --context with one of: "
        )),
        "{e}"
    );
    assert!(
        e.contains("gdtest-admin") && e.contains("red\\x1b[31m"),
        "{e}"
    );
    assert!(!e.contains('\u{1b}'), "escaped: {e:?}");
    assert!(!e.contains("pass --kubeconfig"), "{e}");

    let other = TestCa::generate("not-the-cluster-ca");
    let pem = std::fs::read(&other.cert).unwrap();
    let start = good.find("certificate-authority-data: ").unwrap() + 28;
    let end = start + good[start..].find('\n').unwrap();
    let wrong = format!(
        "{}\"{}\"{}",
        &good[..start],
        base64::engine::general_purpose::STANDARD.encode(pem),
        &good[end..]
    );
    let kc = env.path().join("wrong-ca.kubeconfig");
    std::fs::write(&kc, wrong).unwrap();
    let e = error_line(&env.run(
        "gdcloud-storage",
        &["configure", "--kubeconfig", kc.to_str().unwrap()],
        b"",
    ));
    assert!(
        e.contains("x509: certificate signed by unknown authority"),
        "{e}"
    );
    assert!(
        e.contains("against the certificate-authority of cluster gdtest in the kubeconfig"),
        "{e}"
    );
    assert!(e.contains("`gdcloud clusters get-credentials`"), "{e}");
}

/// A missing tag points at the repository's tags (a command that works as typed); a missing
/// repository points at the spelling, never at `list-versions`, which fails the same way.
#[test]
fn missing_tag_and_missing_repository_name_the_step_that_helps() {
    require_tool("skopeo");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    run_ok(
        skopeo_cmd()
            .args(["copy", "--dest-creds", &reg.creds()])
            .arg(reg.skopeo_tls_flag("dest-"))
            .arg(format!("oci:{}:{TAG}", tiny_image_layout().display()))
            .arg(format!("docker://{}/proj/app:{TAG}", reg.host)),
    );
    let mut env = TestEnv::new();
    env.vars
        .push(("GDCLOUD_AUTH_CREDENTIAL_STORE".into(), "file".into()));
    ok(&env.run(AUTH, &["configure-docker", "--registries", &reg.host], b""));
    let msg = serde_json::json!({"ServerURL": reg.host, "Username": reg.username, "Secret": reg.password});
    ok(&env.helper("store", &msg.to_string()));

    for args in [
        vec![
            "list-versions".to_string(),
            format!("{}/proj/none", reg.host),
        ],
        vec![
            "pull".to_string(),
            format!("{}/proj/none:{TAG}", reg.host),
            "out".to_string(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = error_line(&artifacts(&env, &args));
        assert!(
            e.contains(&format!("(no repository proj/none on {})", reg.host))
                && e.contains("check the project and repository spelling"),
            "{args:?}: {e}"
        );
        let hint = e.split_once("manifest unknown:").unwrap().1;
        assert!(!hint.contains("list-versions"), "{args:?}: {e}");
    }

    let e = error_line(&artifacts(
        &env,
        &["pull", &format!("{}/proj/app:nope", reg.host), "out"],
    ));
    assert!(
        e.contains("manifest unknown: proj/app:nope: check the tag"),
        "{e}"
    );
    let next = quoted_command(&e, "gdcloud-artifacts list-versions");
    assert_eq!(
        next,
        format!("gdcloud-artifacts list-versions {}/proj/app", reg.host)
    );
    let args: Vec<&str> = next.split_whitespace().skip(1).collect();
    let tags = ok(&artifacts(&env, &args));
    assert!(tags.starts_with(&format!("{TAG}\t")), "{tags}");
}

/// `extract` draws progress (its total labelled `extract`) when stderr is a terminal, and nothing
/// when it is not or with --quiet.
#[test]
fn extract_shows_progress_on_a_terminal_only() {
    require_tool("script");
    let env = TestEnv::new();
    let source = format!("{}:{TAG}", tiny_image_layout().display());
    let bin = bin_dir().join("gdcloud-artifacts");
    let on_tty = |dest: &str, extra: &str| {
        let mut c = env.cmd("script");
        c.args(["-q", "-e", "-c"])
            .arg(format!(
                "'{}' extract{extra} '{source}' '{}'",
                bin.display(),
                env.path().join(dest).display()
            ))
            .arg("/dev/null");
        run_with_stdin(c, b"")
    };
    let drawn = ok(&on_tty("tty", ""));
    assert!(
        drawn.contains("extract") && drawn.contains(" B/"),
        "{drawn:?}"
    );
    let quiet = ok(&on_tty("quiet", " --quiet"));
    assert!(!quiet.contains(" B/"), "--quiet drew progress: {quiet:?}");
    let o = artifacts(
        &env,
        &[
            "extract",
            &source,
            env.path().join("pipe").to_str().unwrap(),
        ],
    );
    ok(&o);
    assert!(!stderr(&o).contains(" B/"), "{}", stderr(&o));
}
