//! Self-test of the integration-test fixtures in `tests/util` (registry, token server, tiny
//! image): it proves, against the real Distribution registry and skopeo, that a registry starts in
//! every auth/TLS combination, that an image can be pushed and read back with the right
//! credentials and not with wrong ones, and that the token server issues tokens Distribution
//! accepts and records who asked. When a product test fails, run this first to rule out the
//! fixtures.

use crate::util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use util::image::{seed_image, skopeo_cmd, skopeo_inspect, tiny_image_layout, TAG};
use util::registry::{Registry, RegistryAuth, RegistryOptions};
use util::token_server::{base32_nopad, libtrust_key_id, ISSUER, SERVICE};

/// Seeds `repo:v1`, reads it back with the right credentials, and checks wrong ones fail.
fn push_and_read_back(reg: &Registry, repo: &str) {
    seed_image(reg, repo, "v1");
    let reference = format!("{repo}:v1");
    let out = skopeo_inspect(reg, &reference, Some((&reg.username, &reg.password)));
    assert!(
        out.status.success(),
        "skopeo inspect failed: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        reg.log()
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo inspect prints JSON");
    assert_eq!(v["Name"], format!("{}/{repo}", reg.host));
    assert!(
        v["Digest"].as_str().unwrap_or("").starts_with("sha256:"),
        "{v}"
    );
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(1), "{v}");

    let bad = skopeo_inspect(reg, &reference, Some((&reg.username, "wrong-password")));
    assert!(!bad.status.success(), "wrong password was accepted");
    let err = String::from_utf8_lossy(&bad.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("401"),
        "unexpected error for wrong password: {err}"
    );
}

#[test]
fn tiny_image_layout_is_a_valid_oci_layout() {
    let layout = tiny_image_layout();
    assert!(layout.join("oci-layout").is_file());
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(tags, [TAG]);
    // Built once per process: a second call hands back the same directory.
    assert_eq!(tiny_image_layout(), layout);
}

#[test]
fn htpasswd_plain_http() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    assert!(reg.url().starts_with("http://127.0.0.1:"));
    assert!(reg.ca_cert.is_none());
    push_and_read_back(&reg, "proj/plain");
    assert!(reg.token_server().is_none());
}

#[test]
fn htpasswd_tls() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, true));
    assert_eq!(reg.url(), format!("https://{}", reg.host));
    let ca = reg.ca_cert.as_ref().expect("ca_cert when tls");
    assert!(std::fs::read_to_string(ca)
        .expect("read ca.crt")
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let files: Vec<_> = std::fs::read_dir(reg.cert_dir().expect("cert dir"))
        .expect("list cert dir")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    assert_eq!(
        files,
        ["ca.crt"],
        "skopeo's --cert-dir must hold only ca.crt"
    );
    push_and_read_back(&reg, "proj/tls");

    // TLS really is verified: without the CA, skopeo refuses the self-signed certificate.
    let out = skopeo_cmd()
        .args(["inspect", "--creds", &reg.creds()])
        .arg(format!("docker://{}/proj/tls:v1", reg.host))
        .output()
        .expect("run skopeo");
    assert!(
        !out.status.success(),
        "self-signed cert accepted without CA"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("x509") || err.contains("certificate"),
        "unexpected error without CA: {err}"
    );
}

#[test]
fn token_auth_plain_http() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, false));
    push_and_read_back(&reg, "proj/token");
    let reqs = reg.token_server().expect("token server").requests();
    assert!(
        reqs.iter()
            .any(|r| r.username.as_deref() == Some(reg.username.as_str())
                && r.auth_present
                && r.status == 200
                && r.service.as_deref() == Some(SERVICE)
                && r.scopes
                    .iter()
                    .any(|s| s.starts_with("repository:proj/token:"))),
        "no successful token request by {}: {reqs:#?}",
        reg.username
    );
    assert!(
        reqs.iter()
            .any(|r| r.username.as_deref() == Some(reg.username.as_str()) && r.status == 401),
        "the wrong password did not reach the token server: {reqs:#?}"
    );
}

#[test]
fn token_auth_tls() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, true));
    assert!(reg.url().starts_with("https://"));
    push_and_read_back(&reg, "proj/token-tls");
    let reqs = reg.token_server().expect("token server").requests();
    assert!(
        reqs.iter()
            .any(|r| r.username.as_deref() == Some(reg.username.as_str()) && r.status == 200),
        "{reqs:#?}"
    );
}

#[test]
fn custom_credentials_are_used() {
    let opts = RegistryOptions {
        auth: RegistryAuth::Htpasswd,
        tls: false,
        username: "someone-else".to_string(),
        password: "p@ss:w0rd with space".to_string(),
    };
    let reg = Registry::start(opts);
    assert_eq!(reg.username, "someone-else");
    push_and_read_back(&reg, "other/repo");
}

/// A minimal HTTP/1.0 client: returns (status, body).
fn http(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {resp:?}"));
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("JWT has 3 parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

#[test]
fn token_server_protocol_and_distribution_accepts_tokens() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, false));
    seed_image(&reg, "proj/app", "v1");
    let ts = reg.token_server().expect("token server");
    let ts_host = format!("127.0.0.1:{}", ts.port());
    let seeded = ts.requests().len(); // skopeo's own requests come first
    assert_eq!(ts.realm(), format!("http://{ts_host}/token"));
    let query = format!("/token?service={SERVICE}&scope=repository%3Aproj%2Fapp%3Apull");
    let basic = format!("Basic {}", STANDARD.encode(reg.creds()));
    let tags = |token: &str| {
        let bearer = format!("Bearer {token}");
        http(
            &reg.host,
            "GET",
            "/v2/proj/app/tags/list",
            &[("Authorization", &bearer)],
            "",
        )
    };

    // Anonymous: a well-formed token with no access, which the registry refuses.
    let (status, body) = http(&ts_host, "GET", &query, &[], "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert!(
        v["issued_at"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{v}"
    );
    let anon = v["token"].as_str().expect("token");
    let header = jwt_part(anon, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], ts.key_id());
    let claims = jwt_part(anon, 1);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], SERVICE);
    assert_eq!(claims["access"], json!([]));
    for k in ["exp", "nbf", "iat"] {
        assert!(claims[k].is_u64(), "{k} missing: {claims}");
    }
    assert!(claims["jti"].is_string());
    assert_eq!(tags(anon).0, 401);

    // GET with Basic auth: every requested action, and Distribution accepts the signature/kid.
    let (status, body) = http(&ts_host, "GET", &query, &[("Authorization", &basic)], "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let token = v["token"].as_str().expect("token");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"], reg.username.as_str());
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "proj/app", "actions": ["pull"]}])
    );
    let (status, body) = tags(token);
    assert_eq!(status, 200, "{body}\nregistry log:\n{}", reg.log());
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON")["tags"],
        json!(["v1"])
    );

    // Wrong password: 401 from the token server.
    let wrong = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:nope", reg.username))
    );
    assert_eq!(
        http(&ts_host, "GET", &query, &[("Authorization", &wrong)], "").0,
        401
    );

    // POST password grant (containerd / oras-go), scopes space-separated.
    let form = format!(
        "grant_type=password&client_id=selftest&username={}&password={}&service={SERVICE}\
         &scope=repository%3Aproj%2Fapp%3Apull+registry%3Acatalog%3A*",
        reg.username, reg.password
    );
    let ct = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, body) = http(&ts_host, "POST", "/token", &[ct], &form);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let token = v["access_token"].as_str().expect("access_token");
    assert_eq!(
        jwt_part(token, 1)["access"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(tags(token).0, 200);
    let wrong_form = format!(
        "grant_type=password&username={}&password=nope",
        reg.username
    );
    assert_eq!(http(&ts_host, "POST", "/token", &[ct], &wrong_form).0, 401);

    // Everything was recorded, in order, with who asked.
    let reqs = ts.requests();
    let summary: Vec<_> = reqs[seeded..]
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.auth_present,
                r.username.as_deref(),
                r.status,
            )
        })
        .collect();
    let user = Some(reg.username.as_str());
    assert_eq!(
        summary,
        [
            ("GET", false, None, 200),
            ("GET", true, user, 200),
            ("GET", true, user, 401),
            ("POST", true, user, 200),
            ("POST", true, user, 401),
        ],
        "{reqs:#?}"
    );
    let post = reqs
        .iter()
        .find(|r| r.method == "POST")
        .expect("POST recorded");
    assert_eq!(post.path, "/token");
    assert_eq!(post.grant_type.as_deref(), Some("password"));
    assert_eq!(
        post.scopes,
        ["repository:proj/app:pull", "registry:catalog:*"]
    );
}

#[test]
fn libtrust_key_id_format() {
    // RFC 4648 test vectors.
    assert_eq!(base32_nopad(b""), "");
    assert_eq!(base32_nopad(b"f"), "MY");
    assert_eq!(base32_nopad(b"fooba"), "MZXW6YTB");
    assert_eq!(base32_nopad(b"foobar"), "MZXW6YTBOI");
    let kid = libtrust_key_id(b"any DER");
    let groups: Vec<&str> = kid.split(':').collect();
    assert_eq!(groups.len(), 12, "{kid}");
    assert!(groups.iter().all(|g| g.len() == 4), "{kid}");
}

#[test]
fn registries_are_independent_and_stop_on_drop() {
    let a = Registry::start(RegistryOptions::default());
    let b = Registry::start(RegistryOptions::default());
    assert_ne!(a.host, b.host);
    let (host, dir) = (a.host.clone(), a.dir().to_path_buf());
    drop(a);
    assert!(
        TcpStream::connect(&host).is_err(),
        "registry still listening after drop"
    );
    assert!(!dir.exists(), "temp dir left behind");
    let (status, _) = http(&b.host, "GET", "/v2/", &[], "");
    assert_eq!(status, 401);
}
