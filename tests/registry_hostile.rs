//! The `gdcloud-artifacts` binary against hostile registries: where credentials may go (not to a
//! tag list's `Link` or an upload's `Location` on another host, not to a token realm over plain
//! HTTP on another host), how much of an answer is read into memory (a 1 GiB error body or token
//! answer), how long a trickling answer may hold a command (a manifest or a blob sent a byte at a
//! time), and what registry text may do to a terminal (ESC and newlines in error messages).
//!
//! Hostile answers come from [`util::hostile::Hostile`], a small server standing in for a
//! malicious registry and for the "other host" it points at, recording every `Authorization`
//! header it receives. What is the registry's own behaviour (token auth, where the password goes
//! in the normal flow) runs against the real Distribution registry.

use crate::util;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest as _, Sha256};
use util::env::*;
use util::hostile::{as_another_host, run_measured, Body, Hostile, Reply, Seen};
use util::registry::{Registry, RegistryAuth, RegistryOptions};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const PASSWORD: &str = "hostile-test-secret";
/// More memory than this for a command reading a 1 GiB answer means it read the answer whole.
const MAX_RSS_KIB: u64 = 300 << 10;

fn artifacts_cmd(env: &TestEnv, args: &[&str]) -> Command {
    let exe = bin_dir().join("gdcloud-artifacts");
    assert!(
        exe.is_file(),
        "gdcloud-artifacts is not built: run `cargo build --workspace` first"
    );
    let mut c = env.cmd(exe.to_str().unwrap());
    c.args(args);
    c
}

fn artifacts(env: &TestEnv, args: &[&str], stdin: &[u8]) -> Output {
    run_timed(artifacts_cmd(env, args), stdin, COMMAND_TIMEOUT)
}

/// A hostile registry asking for Basic auth on `/v2/`; `route` answers the rest (None: 404).
fn basic_registry(route: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static) -> Hostile {
    Hostile::start(move |s| {
        if s.path() == "/v2/" {
            return match s.authorization {
                None => Reply::json(401, &json!({}))
                    .header("WWW-Authenticate", "Basic realm=\"hostile\""),
                Some(_) => Reply::json(200, &json!({})),
            };
        }
        route(s).unwrap_or_else(|| Reply::json(404, &json!({"errors": []})))
    })
}

/// A hostile registry without auth; `route` answers everything but `/v2/` (None: 404).
fn open_registry(route: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static) -> Hostile {
    Hostile::start(move |s| {
        if s.path() == "/v2/" {
            return Reply::json(200, &json!({}));
        }
        route(s).unwrap_or_else(|| Reply::json(404, &json!({"errors": []})))
    })
}

fn list_versions_as_user(env: &TestEnv, reg: &str, extra: &[&str]) -> Output {
    let repo = format!("{reg}/proj/app");
    let mut args = vec!["list-versions", "--username", "u", "--password-stdin"];
    args.extend_from_slice(extra);
    args.push(&repo);
    artifacts(env, &args, PASSWORD.as_bytes())
}

fn sha256(b: &[u8]) -> String {
    let hex: String = Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    format!("sha256:{hex}")
}

// ------------------------------------------------------------------ where credentials may go

#[test]
fn tag_list_link_to_another_host_is_refused_and_gets_no_credentials() {
    let other =
        Hostile::start(|_| Reply::json(200, &json!({"name": "proj/app", "tags": ["stolen"]})));
    let link = format!(
        "<{}/v2/proj/app/tags/list?last=v1&n=1000>; rel=\"next\"",
        other.url()
    );
    let reg = basic_registry(move |s| {
        (s.path() == "/v2/proj/app/tags/list").then(|| {
            Reply::json(200, &json!({"name": "proj/app", "tags": ["v1"]})).header("Link", &link)
        })
    });
    let env = TestEnv::new();
    let out = list_versions_as_user(&env, &reg.addr, &["--api", "registry"]);
    assert!(
        reg.authorized().iter().any(|r| r.contains("tags/list")),
        "the registry itself got the credentials: {:?}",
        reg.seen()
    );
    assert_eq!(
        other.authorized(),
        Vec::<String>::new(),
        "the other host got the password"
    );
    assert!(
        other.seen().is_empty(),
        "the other host was asked at all: {:?}",
        other.seen()
    );
    let e = error_line(&out);
    assert!(
        e.contains("not the registry") && e.contains(&other.addr),
        "{e}"
    );
}

#[test]
fn tag_list_link_back_to_a_page_already_read_is_refused() {
    let reg = basic_registry(|s| {
        (s.path() == "/v2/proj/app/tags/list").then(|| {
            Reply::json(200, &json!({"name": "proj/app", "tags": ["v1"]}))
                .header("Link", "</v2/proj/app/tags/list?n=1000>; rel=\"next\"")
        })
    });
    let env = TestEnv::new();
    let e = error_line(&list_versions_as_user(
        &env,
        &reg.addr,
        &["--api", "registry"],
    ));
    assert!(e.contains("points back at a page already read"), "{e}");
    let pages = reg
        .seen()
        .iter()
        .filter(|s| s.path().ends_with("tags/list"))
        .count();
    assert!(pages <= 3, "{pages} pages read");
}

#[test]
fn upload_location_on_another_host_gets_the_blob_but_no_credentials() {
    let other = Hostile::start(|s| match s.method.as_str() {
        "PUT" | "PATCH" => Reply::new(201),
        _ => Reply::new(404),
    });
    let location = format!("{}/upload/session-1", other.url());
    let reg = basic_registry(move |s| match (s.method.as_str(), s.path()) {
        ("POST", p) if p.ends_with("/blobs/uploads/") => Some(
            Reply::new(202)
                .header("Location", &location)
                .header("Docker-Upload-UUID", "session-1"),
        ),
        ("PUT", p) if p.contains("/manifests/") => {
            let digest = sha256(&s.body);
            Some(Reply::new(201).header("Docker-Content-Digest", &digest))
        }
        _ => None,
    });
    let layout = util::image::tiny_image_layout();
    let env = TestEnv::new();
    let dest = format!("{}/proj/app:v1", reg.addr);
    let layout = layout.display().to_string();
    let out = artifacts(
        &env,
        &[
            "push",
            "--username",
            "u",
            "--password-stdin",
            &layout,
            &dest,
        ],
        PASSWORD.as_bytes(),
    );
    assert!(
        reg.authorized().iter().any(|r| r.starts_with("POST")),
        "the registry itself got the credentials: {:?}",
        reg.seen()
    );
    let uploads = other.seen().iter().filter(|s| s.method == "PUT").count();
    assert!(
        uploads >= 1,
        "the blobs went to the Location: {:?}",
        other.seen()
    );
    assert_eq!(
        other.authorized(),
        Vec::<String>::new(),
        "the upload host got the password"
    );
    ok(&out);
}

#[test]
fn token_realm_over_plain_http_on_another_host_gets_no_password() {
    // GET answers 405, so a client would fall back to POSTing the password in a form.
    let other = Hostile::start(|s| match s.method.as_str() {
        "POST" => Reply::json(200, &json!({"token": "t"})),
        _ => Reply::new(405),
    });
    let challenge = format!(
        "Bearer realm=\"{}/token\",service=\"hostile\"",
        as_another_host(&other.url())
    );
    let reg = Hostile::start(move |_| {
        Reply::json(401, &json!({"errors": []})).header("WWW-Authenticate", &challenge)
    });
    let env = TestEnv::new();
    let source = format!("{}/proj/app:v1", reg.addr);
    let out = artifacts(
        &env,
        &[
            "pull",
            "--username",
            "u",
            "--password-stdin",
            &source,
            "out",
        ],
        PASSWORD.as_bytes(),
    );
    let leaked: Vec<Seen> = other
        .seen()
        .into_iter()
        .filter(|s| {
            s.authorization.is_some() || String::from_utf8_lossy(&s.body).contains(PASSWORD)
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "the plain-HTTP realm got the password: {leaked:?}"
    );
    let e = error_line(&out);
    assert!(
        e.contains("plain HTTP") && e.contains(&as_another_host(&other.url())),
        "{e}"
    );
}

#[test]
fn verbosity_debug_says_where_the_credentials_went_but_never_what_they_are() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, false));
    let realm = reg.token_server().unwrap().realm();
    let env = TestEnv::new();
    let repo = format!("{}/proj/none", reg.host);
    let out = artifacts(
        &env,
        &[
            "--verbosity",
            "debug",
            "list-versions",
            "--api",
            "registry",
            "--username",
            &reg.username,
            "--password-stdin",
            &repo,
        ],
        reg.password.as_bytes(),
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "DEBUG: sending the credentials from --username/--password-stdin to token realm {realm}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "DEBUG: sending the registry's bearer token to http://{}/",
            reg.host
        )),
        "{err}"
    );
    assert!(
        !err.contains(&reg.password),
        "the password was logged: {err}"
    );
}

// ------------------------------------------------------------------------- memory and time

#[test]
fn a_gigabyte_error_body_is_cut_not_read() {
    let reg = open_registry(|s| {
        s.path().ends_with("/tags/list").then(|| {
            Reply::new(400).with(Body::Huge {
                prefix: b"bad request ".to_vec(),
                fill: b'x',
                len: 1 << 30,
                suffix: Vec::new(),
            })
        })
    });
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", reg.addr);
    let (out, peak) = run_measured(
        artifacts_cmd(&env, &["list-versions", "--api", "registry", &repo]),
        COMMAND_TIMEOUT,
    );
    assert!(
        peak < MAX_RSS_KIB,
        "peak RSS {peak} KiB reading a 1 GiB error body"
    );
    let e = error_line(&out);
    assert!(
        e.contains("HTTP 400") && e.contains("bad request xxx"),
        "{e}"
    );
}

#[test]
fn a_gigabyte_token_answer_is_refused() {
    let reg = Hostile::start(|s| match s.path() {
        "/token" => Reply::new(200)
            .header("Content-Type", "application/json")
            .with(Body::Huge {
                prefix: b"{\"token\":\"".to_vec(),
                fill: b'a',
                len: 1 << 30,
                suffix: b"\"}".to_vec(),
            }),
        _ => Reply::json(401, &json!({"errors": []})).header(
            "WWW-Authenticate",
            &format!(
                "Bearer realm=\"http://{}/token\",service=\"hostile\"",
                s.host
            ),
        ),
    });
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", reg.addr);
    let (out, peak) = run_measured(
        artifacts_cmd(&env, &["list-versions", "--api", "registry", &repo]),
        COMMAND_TIMEOUT,
    );
    assert!(
        peak < MAX_RSS_KIB,
        "peak RSS {peak} KiB reading a 1 GiB token answer"
    );
    let e = error_line(&out);
    assert!(
        e.contains("token answer") && e.contains("larger than 1 MiB"),
        "{e}"
    );
}

#[test]
fn a_manifest_sent_a_byte_at_a_time_fails_at_the_deadline() {
    let manifest = json!({"schemaVersion": 2, "padding": "p".repeat(4096)}).to_string();
    let reg = open_registry(move |s| {
        s.path().contains("/manifests/").then(|| {
            Reply::new(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .with(Body::Trickle {
                    data: manifest.clone().into_bytes(),
                    pause: Duration::from_millis(200),
                })
        })
    });
    let mut env = TestEnv::new();
    env.vars
        .push(("GDCLOUD_HTTP_REQUEST_TIMEOUT".into(), "2".into()));
    let source = format!("{}/proj/app:v1", reg.addr);
    let started = std::time::Instant::now();
    let out = run_timed(
        artifacts_cmd(&env, &["pull", &source, "out"]),
        b"",
        Duration::from_secs(60),
    );
    let e = error_line(&out);
    assert!(
        e.contains("took longer than 2 s") && e.contains("check the network or the registry"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_blob_sent_a_byte_at_a_time_fails_below_the_rate_floor() {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let sha = sha256;
    let (config_digest, layer_digest) = (sha(&config), sha(&layer));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = sha(&manifest);
    let reg = open_registry(move |s| {
        let p = s.path();
        if p.contains("/manifests/") {
            return Some(
                Reply::new(200)
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .header("Docker-Content-Digest", &manifest_digest)
                    .body(manifest.clone()),
            );
        }
        if p.ends_with(&config_digest) {
            return Some(Reply::new(200).body(config.clone()));
        }
        p.ends_with(&layer_digest).then(|| {
            Reply::new(200).with(Body::Trickle {
                data: layer.clone(),
                pause: Duration::from_millis(200),
            })
        })
    });
    let mut env = TestEnv::new();
    env.vars
        .push(("GDCLOUD_HTTP_STALL_WINDOW".into(), "2".into()));
    let source = format!("{}/proj/app:v1", reg.addr);
    let out = run_timed(
        artifacts_cmd(&env, &["pull", &source, "out"]),
        b"",
        Duration::from_secs(90),
    );
    let e = error_line(&out);
    assert!(e.contains("sent less than 1 KiB/s for 2 s"), "{e}");
}

// ---------------------------------------------------------------------- terminal injection

const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\nERROR: forged line";

fn assert_escaped(e: &str) {
    assert!(
        !e.contains('\u{1b}') && !e.contains('\u{7}'),
        "raw control characters: {e:?}"
    );
    assert!(
        e.contains("evil\\x1b]0;pwned\\x07\\x1b[2J\\nERROR: forged line"),
        "{e:?}"
    );
}

#[test]
fn registry_error_text_is_escaped_in_the_one_line_error() {
    let reg = open_registry(|s| {
        s.path().ends_with("/tags/list").then(|| {
            Reply::json(
                400,
                &json!({"errors": [{"code": "DENIED", "message": EVIL}]}),
            )
        })
    });
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", reg.addr);
    let out = artifacts(&env, &["list-versions", "--api", "registry", &repo], b"");
    assert_escaped(&error_line(&out));
}

#[test]
fn harbor_api_error_text_is_escaped_in_the_one_line_error() {
    let reg = open_registry(|s| match s.path() {
        "/api/v2.0/ping" => Some(Reply::new(200).body(b"Pong".to_vec())),
        p if p.starts_with("/api/v2.0/projects/") => Some(Reply::json(
            400,
            &json!({"errors": [{"code": "BAD_REQUEST", "message": EVIL}]}),
        )),
        _ => None,
    });
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", reg.addr);
    let out = artifacts(&env, &["list-versions", "--api", "harbor", &repo], b"");
    assert_escaped(&error_line(&out));
}

// ------------------------------------------------------------------- the OpenID provider too

#[test]
fn gigabyte_answers_of_an_identity_provider_are_refused() {
    let huge = |prefix: &[u8]| Body::Huge {
        prefix: prefix.to_vec(),
        fill: b' ',
        len: 1 << 30,
        suffix: b"}".to_vec(),
    };
    // A discovery document of 1 GiB.
    let idp = Hostile::start(move |s| match s.path() {
        "/.well-known/openid-configuration" => Reply::new(200).with(huge(b"{")),
        _ => Reply::new(404),
    });
    let env = TestEnv::new();
    let mut c = env.cmd(AUTH);
    c.args([
        "login",
        "--issuer-url",
        &idp.url(),
        "--client-id",
        "c",
        "--no-browser",
    ]);
    let (out, peak) = run_measured(c, COMMAND_TIMEOUT);
    assert!(
        peak < MAX_RSS_KIB,
        "peak RSS {peak} KiB reading a 1 GiB discovery document"
    );
    let e = error_line(&out);
    assert!(
        e.contains("discovery document") && e.contains("larger than 16 MiB"),
        "{e}"
    );

    // A device authorization answer of 1 GiB, behind a sound discovery document.
    let idp = Hostile::start(move |s| match s.path() {
        "/.well-known/openid-configuration" => {
            let base = format!("http://{}", s.host);
            Reply::json(
                200,
                &json!({
                    "issuer": base,
                    "authorization_endpoint": format!("{base}/auth"),
                    "token_endpoint": format!("{base}/token"),
                    "jwks_uri": format!("{base}/jwks"),
                    "device_authorization_endpoint": format!("{base}/device"),
                }),
            )
        }
        "/device" => Reply::new(200).with(huge(b"{\"device_code\":\"")),
        _ => Reply::new(404),
    });
    let mut c = env.cmd(AUTH);
    c.args([
        "login",
        "--issuer-url",
        &idp.url(),
        "--client-id",
        "c",
        "--no-browser",
    ]);
    let (out, peak) = run_measured(c, COMMAND_TIMEOUT);
    assert!(
        peak < MAX_RSS_KIB,
        "peak RSS {peak} KiB reading a 1 GiB device answer"
    );
    let e = error_line(&out);
    assert!(
        e.contains("device authorization answer") && e.contains("larger than 1 MiB"),
        "{e}"
    );
}

#[test]
fn a_blob_upload_the_registry_takes_a_byte_at_a_time_fails_below_the_rate_floor() {
    // A layout with one 32 MiB layer: far more than the socket buffers hold, so the upload
    // stalls once they are full.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha256(b);
        std::fs::write(blobs.join(&d["sha256:".len()..]), b).unwrap();
        d
    };
    let layer: Vec<u8> = (0..32u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(&layer), "size": layer.len()}],
    })
    .to_string();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(manifest.as_bytes()),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    let reg = Hostile::start_reading_slowly(Duration::from_millis(200), |s| {
        if s.path() == "/v2/" {
            return Reply::json(200, &json!({}));
        }
        match (s.method.as_str(), s.path()) {
            ("POST", p) if p.ends_with("/blobs/uploads/") => {
                Reply::new(202).header("Location", "/v2/proj/app/blobs/uploads/s1")
            }
            ("PUT", p) if p.contains("/blobs/uploads/") => Reply::new(201),
            _ => Reply::json(404, &json!({"errors": []})),
        }
    });
    let mut env = TestEnv::new();
    env.vars
        .push(("GDCLOUD_HTTP_STALL_WINDOW".into(), "2".into()));
    let dest = format!("{}/proj/app:v1", reg.addr);
    let out = run_timed(
        // Uncompressed, so the upload is the 32 MiB the socket buffers cannot hold.
        artifacts_cmd(
            &env,
            &[
                "push",
                "--compression",
                "none",
                &layout.display().to_string(),
                &dest,
            ],
        ),
        b"",
        Duration::from_secs(90),
    );
    let e = error_line(&out);
    assert!(
        e.contains("took less than 1 KiB/s for 2 s")
            && e.contains("check the network or the registry"),
        "{e}"
    );
}

#[test]
fn tag_names_outside_the_grammar_are_refused_not_printed() {
    let reg = open_registry(|s| match s.path() {
        "/v2/proj/app/tags/list" => Some(Reply::json(
            200,
            &json!({"name": "proj/app", "tags": ["v1", "evil\u{1b}[2J"]}),
        )),
        "/api/v2.0/ping" => Some(Reply::new(200).body(b"Pong".to_vec())),
        p if p.starts_with("/api/v2.0/projects/") => Some(Reply::json(
            200,
            &json!([{"digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                     "tags": [{"name": "evil\u{1b}[2J", "push_time": "2026-01-01T00:00:00Z"}]}]),
        )),
        _ => None,
    });
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", reg.addr);
    for api in ["registry", "harbor"] {
        let out = artifacts(&env, &["list-versions", "--api", api, &repo], b"");
        let e = error_line(&out);
        assert!(!e.contains('\u{1b}'), "raw ESC with --api {api}: {e:?}");
        assert!(
            e.contains("evil\\x1b[2J") && e.contains("not a valid"),
            "{e}"
        );
    }
}

#[test]
fn a_token_that_claims_to_live_forever_does_not_crash_the_client() {
    let reg = Hostile::start(|s| match s.path() {
        "/token" => Reply::new(200)
            .header("Content-Type", "application/json")
            .body(br#"{"token":"t","expires_in":18446744073709551615}"#.to_vec()),
        "/v2/proj/app/tags/list" if s.authorization.is_some() => {
            Reply::json(200, &json!({"name": "proj/app", "tags": []}))
        }
        _ => Reply::json(401, &json!({"errors": []})).header(
            "WWW-Authenticate",
            &format!(
                "Bearer realm=\"http://{}/token\",service=\"hostile\"",
                s.host
            ),
        ),
    });
    let env = TestEnv::new();
    let repo = format!("{}/proj/app", reg.addr);
    let e = error_line(&artifacts(
        &env,
        &["list-versions", "--api", "registry", &repo],
        b"",
    ));
    assert!(e.contains("has no tags"), "{e}");
}
