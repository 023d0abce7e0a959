//! End to end: runs `scripts/runbook-demo.sh` (the seed runbook on a real kube-apiserver, Garage and
//! a Distribution registry, all on loopback) with this build's binaries and checks that every step
//! ran, that the newest tag is the pushed one, that the image's file came out of the extraction, that
//! the registry used Docker token auth (as Harbor does) with every client getting its tokens from
//! the token server with the right login, and that neither the bucket secret key nor the registry
//! password appears anywhere in the output.

use crate::util;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use util::token_server::{ISSUER, SERVICE};

#[test]
fn runbook_demo_walks_every_step_without_showing_a_secret() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // This build's binaries (debug ones are fine); GDCLOUD_BIN_DIR from the caller wins.
    let bin_dir = std::env::var_os("GDCLOUD_BIN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(util::env::bin_dir);
    for b in ["gdcloud-storage", "gdcloud-artifacts"] {
        assert!(
            bin_dir.join(b).exists(),
            "{b} is not built in {}: run `cargo test --workspace` (tests/run.sh does)",
            bin_dir.display()
        );
    }
    assert!(
        bin_dir.join("examples/token-server").exists(),
        "the demo's token server is not built in {}/examples: run `cargo build --examples`",
        bin_dir.display()
    );
    let nonce = format!("{:016x}", util::kube::rand_u64());
    let secret_key = format!("demo-test-secret-{nonce}");
    let registry_password = format!("demo-test-password-{nonce}");
    let report = tempfile::Builder::new()
        .prefix("gdk-demo-report-")
        .tempdir()
        .expect("create the report dir");

    let out = Command::new("bash")
        .arg(repo.join("scripts/runbook-demo.sh"))
        .current_dir(&repo)
        .env("GDCLOUD_BIN_DIR", &bin_dir)
        .env("DEMO_ACCESS_KEY", format!("DEMOTEST{}", &nonce[..8]))
        .env("DEMO_SECRET_KEY", &secret_key)
        .env("DEMO_REGISTRY_PASSWORD", &registry_password)
        .env("DEMO_REPORT_DIR", report.path())
        .env_remove("DEMO_KEEP")
        .stdin(Stdio::null())
        .output()
        .expect("run bash scripts/runbook-demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "runbook-demo.sh failed ({}):\n{all}",
        out.status
    );

    for step in [
        "$ gdcloud-auth configure-docker --kubeconfig ",
        "$ docker", // `docker login --password-stdin` or, without a docker CLI, `docker-credential-gdcloud store`
        "$ gdcloud-storage configure --kubeconfig ",
        "$ gdcloud-storage cp s3://",
        "/g/oracle_db.tar .",
        "$ gdcloud-artifacts push oracle_db.tar proj/oracle_db:19c --kubeconfig ",
        "$ TAG=$(gdcloud-artifacts list-versions proj/oracle_db --latest --kubeconfig ",
        "$ gdcloud-artifacts pull --single-manifest-repo proj/oracle_db:19c oracle_db-19c --kubeconfig ",
        "$ gdcloud-artifacts extract oracle_db-19c oracle_db-19c-extracted",
        "$ cat oracle_db-19c-extracted/",
        "runbook demo: OK",
    ] {
        assert!(stdout.contains(step), "no {step:?} in the output:\n{all}");
    }
    assert!(
        stdout.contains("$ echo $TAG\n19c\n"),
        "the newest tag is not 19c:\n{all}"
    );
    assert!(
        stdout.contains("Oracle Database 19c demo image (gdcloud-kit runbook demo)"),
        "the extracted file's content is not shown:\n{all}"
    );
    for (what, secret) in [
        ("bucket secret key", &secret_key),
        ("registry password", &registry_password),
    ] {
        assert!(
            !all.contains(secret.as_str()),
            "the {what} appears in the output:\n{all}"
        );
    }

    // Token auth, really: the registry's config, its challenge and the token server's request log.
    let read = |name: &str| {
        let text = std::fs::read_to_string(report.path().join(name))
            .unwrap_or_else(|e| panic!("DEMO_REPORT_DIR has no {name} ({e}):\n{all}"));
        assert!(
            !text.contains(&registry_password) && !text.contains(&secret_key),
            "a secret appears in the demo's {name}:\n{text}"
        );
        text
    };
    let line: serde_json::Value = serde_json::from_str(read("token-server.json").trim())
        .expect("token-server prints one line of JSON");
    let realm = line["realm"]
        .as_str()
        .expect("token-server JSON has a realm");
    assert!(
        realm.starts_with("http://127.0.0.1:") && realm.ends_with("/token"),
        "unexpected realm {realm:?}"
    );
    assert_eq!(line["service"], SERVICE, "{line}");
    assert_eq!(line["issuer"], ISSUER, "{line}");
    let config = read("registry.yml");
    assert!(
        config.contains(&format!("token: {{realm: \"{realm}\"")) && !config.contains("htpasswd"),
        "the registry is not configured for token auth with the token server:\n{config}"
    );
    let challenge = read("registry-challenge.txt");
    assert!(
        challenge.contains(&format!("Bearer realm=\"{realm}\"")),
        "the registry does not send clients to the token server: {challenge:?}"
    );
    assert!(
        stderr.contains(&format!(
            "registry: Distribution with token auth (realm {realm})"
        )),
        "no token-auth info line on stderr:\n{all}"
    );
    let log = read("token-server.log");
    let granted = |action: &str| {
        log.lines().any(|l| {
            l.contains(" user=demo ")
                && l.ends_with(" status=200")
                && l.split(' ').any(|w| {
                    w.strip_prefix("scopes=")
                        .unwrap_or(w)
                        .strip_prefix("repository:proj/oracle_db:")
                        .is_some_and(|a| a.split(',').any(|a| a == action))
                })
        })
    };
    for action in ["push", "pull"] {
        assert!(
            granted(action),
            "the token server granted user demo no {action} token for proj/oracle_db:\n{log}"
        );
    }
    assert!(
        !log.contains("status=401"),
        "a client presented a wrong login to the token server:\n{log}"
    );
}
