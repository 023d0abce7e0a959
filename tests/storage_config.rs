//! Integration tests of `gdcloud-storage configure`, `env` and `exec` against a real
//! kube-apiserver (bucket key Secrets, the `dnssuffix` ConfigMap, RBAC 403s and token 401s) and a
//! real S3 server (Garage, which checks SigV4 signatures) driven by the real aws CLI. They check
//! what the issue promises: the properties land in the chosen configuration file (0600), the
//! secret key is never printed, ambiguous or broken secrets and refused requests give clear errors
//! and write nothing, `env` prints working exports (and refuses a terminal), and `exec` hands the
//! keys to a command through its environment only and passes its exit status through.

use crate::util;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use util::env::{ok, run_with_stdin, stderr, stdout, TestEnv};
use util::kube::{
    require_tool, AccessKey, GdcFixtures, KubeCluster, KEYS_NAMESPACE, NOBODY, READER,
};
use util::s3::S3Server;
use util::storage::{assert_contains, fails, hermetic, storage, storage_bin};

const ACCESS_KEY: &str = "GDTESTACCESSKEY1";
const SECRET_KEY: &str = "gdtest-secret-key-1";
const SECOND_ACCESS_KEY: &str = "GDTESTACCESSKEY2";
const SECOND_SECRET_KEY: &str = "gdtest-secret-key-2";
const DEFAULT_ENDPOINT: &str = "https://objectstorage.org.example.test";

fn config_file(env: &TestEnv, name: &str) -> PathBuf {
    env.config_dir.join(format!("configurations/config_{name}"))
}

/// The `section/key = value` pairs of an INI configuration file.
fn properties(path: &Path) -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut section = String::new();
    let mut map = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            map.insert(format!("{section}/{}", k.trim()), v.trim().to_string());
        }
    }
    map
}

/// Asserts that no configuration file exists in `env`.
#[track_caller]
fn assert_nothing_written(env: &TestEnv) {
    let dir = env.config_dir.join("configurations");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        files.is_empty(),
        "configuration files were written: {files:?}"
    );
}

/// A cluster with the GDC objects of `fx`; `reader` may also read the `dnssuffix` ConfigMap (the
/// fixtures grant it only the bucket key Secrets).
fn cluster_with(fx: &GdcFixtures) -> KubeCluster {
    let cluster = KubeCluster::start();
    cluster.install_gdc_fixtures_with(fx);
    cluster.grant(READER, "gpc-system", &["configmaps"], &["get"]);
    cluster
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn configure_writes_the_key_masked_into_the_chosen_configuration() {
    let cluster = cluster_with(&GdcFixtures::default());
    let kc = cluster.kubeconfig_for(READER);
    let kc = path_str(&kc);

    // One bucket key: used without --secret, endpoint from dnsSuffix, default configuration.
    let env = TestEnv::new();
    let out = storage(&env, &["configure", "--kubeconfig", kc]);
    let text = ok(&out);
    let masked = format!("{}KEY1", "*".repeat(ACCESS_KEY.len() - 4));
    assert_contains(&text, &[&masked, DEFAULT_ENDPOINT, "default"]);
    for stream in [stdout(&out), stderr(&out)] {
        assert!(!stream.contains(SECRET_KEY), "secret key shown: {stream}");
        assert!(
            !stream.contains(ACCESS_KEY),
            "access key unmasked: {stream}"
        );
    }
    // Each property written is named on stderr with where its value came from.
    let told = stderr(&out);
    assert_contains(
        &told,
        &[
            &format!(
                "Set storage/s3_endpoint to {DEFAULT_ENDPOINT} in configuration default (from configmap gpc-system/dnssuffix)"
            ),
            "Set storage/s3_secret_access_key to ******** in configuration default (from secret ",
            &format!("Set storage/s3_access_key_id to {masked} in configuration default"),
        ],
    );
    let file = config_file(&env, "default");
    let props = properties(&file);
    assert_eq!(props["storage/s3_access_key_id"], ACCESS_KEY);
    assert_eq!(props["storage/s3_secret_access_key"], SECRET_KEY);
    assert_eq!(props["storage/s3_endpoint"], DEFAULT_ENDPOINT);
    assert!(!props.contains_key("storage/s3_custom_ca_certs_file"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());

    // --configuration work, --endpoint overrides, --ca-cert-path (relative) is recorded absolute;
    // the default configuration is left alone. JSON output masks too.
    std::fs::write(env.path().join("org-ca.pem"), "not checked\n").unwrap();
    let out = storage(
        &env,
        &[
            "configure",
            "--kubeconfig",
            kc,
            "--configuration",
            "work",
            "--endpoint",
            "http://127.0.0.1:9/",
            "--ca-cert-path",
            "org-ca.pem",
            "--format",
            "json",
        ],
    );
    let json: Value = serde_json::from_str(&ok(&out)).expect("configure --format json is JSON");
    assert_eq!(json["access_key_id"], masked.as_str(), "{json}");
    assert_eq!(json["configuration"], "work", "{json}");
    assert!(!stdout(&out).contains(SECRET_KEY) && !stderr(&out).contains(SECRET_KEY));
    assert_contains(
        &stderr(&out),
        &["Set storage/s3_endpoint to http://127.0.0.1:9 in configuration work (from --endpoint)"],
    );
    assert_eq!(json["recorded"].as_array().map(Vec::len), Some(4), "{json}");
    let work = properties(&config_file(&env, "work"));
    assert_eq!(work["storage/s3_access_key_id"], ACCESS_KEY);
    assert_eq!(work["storage/s3_endpoint"], "http://127.0.0.1:9");
    let ca = std::fs::canonicalize(env.path().join("org-ca.pem")).unwrap();
    assert_eq!(work["storage/s3_custom_ca_certs_file"], path_str(&ca));
    assert!(Path::new(&work["storage/s3_custom_ca_certs_file"]).is_absolute());
    assert_eq!(
        properties(&file),
        props,
        "the default configuration changed"
    );

    // A second bucket key: refused, both listed with their subjects, nothing written.
    let mut second = AccessKey::new(
        "object-storage-key-std-user-2",
        SECOND_ACCESS_KEY,
        SECOND_SECRET_KEY,
    );
    second.subject = "user:std-user-2".to_string();
    let mut fx = GdcFixtures::default();
    fx.access_keys.push(second);
    cluster.install_gdc_fixtures_with(&fx);
    let env = TestEnv::new();
    let msg = fails(&storage(&env, &["configure", "--kubeconfig", kc]));
    assert_contains(
        &msg,
        &[
            "object-storage-key-std-user-1",
            "object-storage-key-std-user-2",
            "user:std-user-1",
            "user:std-user-2",
            "--secret",
        ],
    );
    assert!(!msg.contains(SECRET_KEY) && !msg.contains(SECOND_SECRET_KEY));
    assert_nothing_written(&env);

    // --secret picks one.
    let out = storage(
        &env,
        &[
            "configure",
            "--kubeconfig",
            kc,
            "--secret",
            "object-storage-key-std-user-2",
        ],
    );
    ok(&out);
    assert!(!stdout(&out).contains(SECOND_SECRET_KEY) && !stderr(&out).contains(SECOND_SECRET_KEY));
    let props = properties(&config_file(&env, "default"));
    assert_eq!(props["storage/s3_access_key_id"], SECOND_ACCESS_KEY);
    assert_eq!(props["storage/s3_secret_access_key"], SECOND_SECRET_KEY);
}

#[test]
fn configure_errors_are_clear_and_write_nothing() {
    require_tool("kubectl", "install kubectl (Debian's kubernetes-client)");
    let cluster = KubeCluster::start();
    cluster.install_gdc_fixtures();
    let reader = cluster.kubeconfig_for(READER);
    let kc = path_str(&reader);
    let env = TestEnv::new();
    let mut messages = Vec::new();

    // reader may read the bucket keys but not the dnssuffix ConfigMap: 403, and --endpoint helps.
    let msg = fails(&storage(&env, &["configure", "--kubeconfig", kc]));
    messages.push(msg.clone());
    assert_contains(
        &msg,
        &["403", READER, "configmaps", "gpc-system", "--endpoint"],
    );
    cluster.grant(READER, "gpc-system", &["configmaps"], &["get"]);

    // A CA file that does not exist is refused, not recorded as a dangling (relative) path.
    let msg = fails(&storage(
        &env,
        &[
            "configure",
            "--kubeconfig",
            kc,
            "--ca-cert-path",
            "missing-ca.pem",
        ],
    ));
    messages.push(msg.clone());
    assert_contains(&msg, &["missing-ca.pem"]);

    // No bucket key in the namespace.
    cluster.kubectl_ok(["create", "namespace", "no-keys"]);
    cluster.grant(READER, "no-keys", &["secrets"], &["get", "list"]);
    let msg = fails(&storage(
        &env,
        &["configure", "--kubeconfig", kc, "--namespace", "no-keys"],
    ));
    messages.push(msg.clone());
    assert_contains(&msg, &["object-storage-key-", "no-keys"]);

    // A secret without secret-access-key.
    cluster.kubectl_ok([
        "-n",
        KEYS_NAMESPACE,
        "create",
        "secret",
        "generic",
        "half-key",
        "--from-literal=access-key-id=GDTESTHALFKEY",
    ]);
    let msg = fails(&storage(
        &env,
        &["configure", "--kubeconfig", kc, "--secret", "half-key"],
    ));
    messages.push(msg.clone());
    assert_contains(&msg, &["half-key", "secret-access-key"]);

    // A secret key that is not UTF-8.
    let bin = env.path().join("binary-key");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x80, b'k']).unwrap();
    cluster.kubectl_ok([
        "-n".to_string(),
        KEYS_NAMESPACE.to_string(),
        "create".into(),
        "secret".into(),
        "generic".into(),
        "binary-key".into(),
        "--from-literal=access-key-id=GDTESTBINKEY".into(),
        format!("--from-file=secret-access-key={}", bin.display()),
    ]);
    let msg = fails(&storage(
        &env,
        &["configure", "--kubeconfig", kc, "--secret", "binary-key"],
    ));
    messages.push(msg.clone());
    assert_contains(&msg, &["binary-key", "secret-access-key", "UTF-8"]);

    // A secret that does not exist: the message says what there is instead.
    let msg = fails(&storage(
        &env,
        &[
            "configure",
            "--kubeconfig",
            kc,
            "--secret",
            "object-storage-key-nope",
        ],
    ));
    messages.push(msg.clone());
    assert_contains(
        &msg,
        &["object-storage-key-nope", "object-storage-key-std-user-1"],
    );

    // nobody: 403, naming the user, the resource, the namespace and the role to ask for.
    let msg = fails(&storage(
        &env,
        &[
            "configure",
            "--kubeconfig",
            path_str(&cluster.kubeconfig_for(NOBODY)),
        ],
    ));
    messages.push(msg.clone());
    assert_contains(
        &msg,
        &[
            "403",
            NOBODY,
            "secrets",
            KEYS_NAMESPACE,
            "project-bucket-object-viewer",
        ],
    );

    // A token the cluster does not know: 401, log in again.
    let bogus = env.path().join("bogus.kubeconfig");
    let text = std::fs::read_to_string(&reader).unwrap();
    assert!(text.contains(cluster.token(READER)));
    std::fs::write(
        &bogus,
        text.replace(cluster.token(READER), "reader-bogus-token-0123456789"),
    )
    .unwrap();
    let msg = fails(&storage(
        &env,
        &["configure", "--kubeconfig", path_str(&bogus)],
    ));
    messages.push(msg.clone());
    assert_contains(&msg, &["401"]);
    assert!(
        msg.contains("login") || msg.contains("get-credentials"),
        "401 without what to do: {msg}"
    );

    // An empty dnsSuffix: pass --endpoint.
    cluster.kubectl_ok([
        "-n",
        "gpc-system",
        "patch",
        "configmap",
        "dnssuffix",
        "--type=merge",
        "-p",
        r#"{"data":{"dnsSuffix":""}}"#,
    ]);
    let msg = fails(&storage(&env, &["configure", "--kubeconfig", kc]));
    messages.push(msg.clone());
    assert_contains(&msg, &["dnsSuffix", "--endpoint"]);

    for m in &messages {
        assert!(!m.contains(SECRET_KEY), "secret key shown: {m}");
    }
    assert_nothing_written(&env);
}

/// Values from the cluster are outside text: a `dnsSuffix` that is not a DNS name (here with a
/// userinfo part that would make the endpoint's host `evil.test`) is refused with the value
/// escaped, and control characters in the access key reach the terminal only escaped.
#[test]
fn hostile_cluster_values_are_refused_or_escaped() {
    let mut fx = GdcFixtures {
        dns_suffix: "x@evil.test:443/\u{1b}[2J".to_string(),
        ..GdcFixtures::default()
    };
    fx.access_keys[0].access_key_id = "GDTESTACCESSKE\u{1b}[2J".to_string();
    let cluster = cluster_with(&fx);
    let kc = cluster.kubeconfig_for(READER);
    let kc = path_str(&kc);
    let env = TestEnv::new();

    let msg = fails(&storage(&env, &["configure", "--kubeconfig", kc]));
    assert_contains(
        &msg,
        &[
            "gpc-system/dnssuffix",
            "x@evil.test:443/\\x1b[2J",
            "--endpoint",
        ],
    );
    assert!(!msg.contains('\u{1b}'), "raw ESC in the message: {msg:?}");
    assert_eq!(msg.trim_end().lines().count(), 1, "not one line: {msg}");
    assert_nothing_written(&env);

    // With --endpoint the suffix is not read; the masked key shows its tail escaped.
    let out = storage(
        &env,
        &[
            "configure",
            "--kubeconfig",
            kc,
            "--endpoint",
            "https://objectstorage.org.example.test",
        ],
    );
    let text = ok(&out);
    assert!(
        !text.contains('\u{1b}') && !stderr(&out).contains('\u{1b}'),
        "raw ESC printed: {text:?}"
    );
    assert_contains(&text, &["**********\\x1b[2J"]);
}

/// Runs `sh -c script` in `env` (hermetic), returning its output.
fn sh(env: &TestEnv, script: &str) -> Output {
    let mut c = env.cmd("sh");
    hermetic(&mut c).arg("-c").arg(script);
    run_with_stdin(c, b"")
}

#[test]
fn env_and_exec_hand_the_key_to_s3_tools() {
    let s3 = S3Server::start();
    let cluster = cluster_with(&GdcFixtures::with_access_key(
        &s3.access_key,
        &s3.secret_key,
    ));
    let reader = cluster.kubeconfig_for(READER);
    let kc = path_str(&reader);
    let bin = storage_bin();
    let env = TestEnv::new();
    ok(&storage(
        &env,
        &["configure", "--kubeconfig", kc, "--endpoint", &s3.endpoint],
    ));

    // sh (default), fish and powershell syntax.
    let sh_out = ok(&storage(&env, &["env"]));
    assert_contains(
        &sh_out,
        &[
            &format!("export AWS_ACCESS_KEY_ID='{}'", s3.access_key),
            &format!("export AWS_SECRET_ACCESS_KEY='{}'", s3.secret_key),
            &format!("export AWS_ENDPOINT_URL='{}'", s3.endpoint),
        ],
    );
    assert!(!sh_out.contains("AWS_CA_BUNDLE"), "{sh_out}");
    let fish = ok(&storage(&env, &["env", "--shell", "fish"]));
    assert_contains(
        &fish,
        &[&format!(
            "set -gx AWS_SECRET_ACCESS_KEY '{}'",
            s3.secret_key
        )],
    );
    let ps = ok(&storage(&env, &["env", "--shell", "powershell"]));
    assert_contains(
        &ps,
        &[&format!("$env:AWS_ENDPOINT_URL = '{}'", s3.endpoint)],
    );

    // JSON.
    let json: Value = serde_json::from_str(&ok(&storage(&env, &["env", "--format", "json"])))
        .expect("env --format json is JSON");
    assert_eq!(json["AWS_ACCESS_KEY_ID"], s3.access_key.as_str());
    assert_eq!(json["AWS_SECRET_ACCESS_KEY"], s3.secret_key.as_str());
    assert_eq!(json["AWS_ENDPOINT_URL"], s3.endpoint.as_str());

    // eval "$(gdcloud-storage env)" in a POSIX shell.
    let got = ok(&sh(
        &env,
        &format!(
            r#"eval "$('{bin}' env)"; echo "$AWS_ENDPOINT_URL|$AWS_ACCESS_KEY_ID|$AWS_SECRET_ACCESS_KEY""#
        ),
    ));
    assert_eq!(
        got.trim(),
        format!("{}|{}|{}", s3.endpoint, s3.access_key, s3.secret_key)
    );

    // A configuration with a CA exports AWS_CA_BUNDLE.
    let ca = env.path().join("ca.pem");
    std::fs::write(&ca, "not checked\n").unwrap();
    ok(&storage(
        &env,
        &[
            "configure",
            "--kubeconfig",
            kc,
            "--configuration",
            "withca",
            "--endpoint",
            &s3.endpoint,
            "--ca-cert-path",
            path_str(&ca),
        ],
    ));
    let with_ca = ok(&storage(&env, &["--configuration", "withca", "env"]));
    let ca = std::fs::canonicalize(&ca).unwrap();
    assert_contains(
        &with_ca,
        &[&format!("export AWS_CA_BUNDLE='{}'", ca.display())],
    );

    // On a terminal: refused without --show-secrets, printed with it.
    require_tool(
        "script",
        "install util-linux (`script` gives the command a TTY)",
    );
    let on_tty = |args: &str| {
        let mut c = env.cmd("script");
        hermetic(&mut c)
            .args(["-q", "-e", "-c"])
            .arg(format!("'{bin}' env{args}"))
            .arg("/dev/null")
            .stdin(Stdio::null());
        c.output().expect("run script")
    };
    let out = on_tty("");
    let msg = fails(&out);
    assert!(
        !msg.contains(&s3.secret_key),
        "secret shown on a TTY: {msg}"
    );
    assert_contains(&msg, &["terminal", "--show-secrets"]);
    let out = on_tty(" --show-secrets");
    assert_contains(&ok(&out), &[&s3.secret_key]);

    // exec: the variables reach the command, the exit status comes back, argv stays clean.
    let out = storage(
        &env,
        &[
            "exec",
            "--",
            "sh",
            "-c",
            r#"test -n "$AWS_SECRET_ACCESS_KEY" && exit 7"#,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let argv = ok(&storage(
        &env,
        &[
            "exec",
            "--",
            "sh",
            "-c",
            r#"tr '\0' ' ' < /proc/$PPID/cmdline; echo "|$AWS_ACCESS_KEY_ID""#,
        ],
    ));
    assert!(argv.contains("exec"), "not the parent's argv: {argv}");
    assert!(
        argv.trim_end().ends_with(&format!("|{}", s3.access_key)),
        "{argv}"
    );
    assert!(!argv.contains(&s3.secret_key), "secret key in argv: {argv}");

    // exec --secret against the real S3 server with the aws CLI, in a world with no configuration.
    let upload = env.path().join("hello.txt");
    std::fs::write(&upload, "hello from the test\n").unwrap();
    let put = s3
        .aws(false)
        .arg("s3")
        .arg("cp")
        .arg(&upload)
        .arg(format!("s3://{}/gdtest-object.txt", s3.bucket))
        .output()
        .expect("run aws s3 cp");
    assert!(
        put.status.success(),
        "aws s3 cp failed: {}\n{}",
        String::from_utf8_lossy(&put.stderr),
        s3.logs()
    );
    let fresh = TestEnv::new();
    let nowhere = fresh.path().join("no-aws-config");
    let mut c = fresh.cmd(&bin);
    hermetic(&mut c)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .args(["exec", "--secret", "object-storage-key-std-user-1"])
        .args(["--kubeconfig", kc, "--endpoint", &s3.endpoint])
        .args(["--", "aws", "s3", "ls"])
        .arg(format!("s3://{}", s3.bucket));
    let out = run_with_stdin(c, b"");
    let listing = stdout(&out);
    assert!(
        out.status.success() && listing.contains("gdtest-object.txt"),
        "exec aws s3 ls ({}):\nstdout: {listing}\nstderr: {}\n{}",
        out.status,
        stderr(&out),
        s3.logs()
    );
    assert!(!listing.contains(&s3.secret_key) && !stderr(&out).contains(&s3.secret_key));
    assert_nothing_written(&fresh);
    assert!(
        !fresh.config_dir.exists(),
        "exec --secret created {}",
        fresh.config_dir.display()
    );
}

/// `env` output read back by real shells, with values that break naive quoting: quotes of every
/// kind, backslashes, `$`, spaces and a newline. Stale AWS variables inherited by the shell are
/// cleared, and `exec` clears them too.
#[test]
fn env_quotes_hostile_values_for_sh_and_fish_and_clears_stale_variables() {
    require_tool("fish", "install fish (tests/run.sh does)");
    let env = TestEnv::new();
    let secret = "a'b\"c\\d\\\\e $HOME `x` \u{2019}f\ng";
    let endpoint = "http://127.0.0.1:9";
    let bin = storage_bin();
    let with_settings = |c: &mut Command| {
        hermetic(c)
            .env("GDCLOUD_STORAGE_S3_ACCESS_KEY_ID", "GDTESTHOSTILE")
            .env("GDCLOUD_STORAGE_S3_SECRET_ACCESS_KEY", secret)
            .env("GDCLOUD_STORAGE_S3_ENDPOINT", endpoint)
            .env("AWS_SESSION_TOKEN", "stale-session-token")
            .env("AWS_ENDPOINT_URL_S3", "http://stale.invalid");
    };
    let script_sh = format!(
        r#"eval "$('{bin}' env)"; printf '%s|%s|%s|%s' "$AWS_SECRET_ACCESS_KEY" "$AWS_ENDPOINT_URL" "${{AWS_SESSION_TOKEN-unset}}" "${{AWS_ENDPOINT_URL_S3-unset}}""#
    );
    let script_fish = format!(
        r#"'{bin}' env --shell fish | source; or exit 3; printf '%s|%s|%s|%s' "$AWS_SECRET_ACCESS_KEY" "$AWS_ENDPOINT_URL" (set -q AWS_SESSION_TOKEN; and echo set; or echo unset) (set -q AWS_ENDPOINT_URL_S3; and echo set; or echo unset)"#
    );
    let want = format!("{secret}|{endpoint}|unset|unset");
    for (shell, script) in [("sh", script_sh), ("fish", script_fish)] {
        let mut c = env.cmd(shell);
        with_settings(&mut c);
        c.arg("-c").arg(script);
        let got = ok(&run_with_stdin(c, b""));
        assert_eq!(got, want, "{shell} read back something else");
    }

    // exec: same values, stale variables gone.
    let mut c = env.cmd(&bin);
    with_settings(&mut c);
    c.args(["exec", "--", "sh", "-c"]).arg(
        r#"printf '%s|%s|%s' "$AWS_SECRET_ACCESS_KEY" "${AWS_SESSION_TOKEN-unset}" "${AWS_ENDPOINT_URL_S3-unset}""#,
    );
    assert_eq!(ok(&run_with_stdin(c, b"")), format!("{secret}|unset|unset"));

    // PowerShell: no interpreter here; the lines are checked as text.
    let mut c = env.cmd(&bin);
    with_settings(&mut c);
    c.args(["env", "--shell", "powershell"]);
    let ps = ok(&run_with_stdin(c, b""));
    assert_contains(
        &ps,
        &[
            "Remove-Item -ErrorAction SilentlyContinue Env:AWS_SESSION_TOKEN",
            "$env:AWS_SECRET_ACCESS_KEY = 'a''b\"c\\d\\\\e $HOME `x` \u{2019}\u{2019}f\ng'",
        ],
    );
}
