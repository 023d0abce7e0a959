//! `gdcloud-artifacts load BUNDLE [REGISTRY[/PREFIX]]` against a real Distribution registry
//! (token auth and TLS, as Harbor serves): a bundle holding a multi-platform index, a Docker
//! schema 2 image, an artifact with its own `artifactType`, a cosign `.sig` tag, an untagged
//! OCI 1.1 referrer and a nested repository (`p/a/b:t`) goes up with every digest unchanged
//! (read back by skopeo), a blob shared by three repositories is uploaded once and mounted into
//! the others (the registry's own log counts the uploads), `--dry-run` sends nothing and a
//! re-run skips everything; a broken entry stops the load, or with `--continue-on-error` fails
//! alone; a load killed mid-way finishes on a re-run without re-sending what was complete;
//! `--verify --key` refuses an unsigned image before anything is sent.
//!
//! Bundles are written here blob by blob (as `skopeo copy --all` or oc-mirror lay them out), so
//! that each test knows every digest it must find in the registry.

use crate::util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use util::env::*;
use util::image::skopeo_cmd;
use util::proxy::Proxy;
use util::registry::{Registry, RegistryAuth, RegistryOptions};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

// ------------------------------------------------------------------------------------ bundles

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI layout being written: blobs as they come, `index.json` at [`Bundle::finish`].
struct Bundle {
    dir: PathBuf,
    entries: Vec<Value>,
}

impl Bundle {
    fn new(dir: &Path) -> Bundle {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Bundle {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// Writes a blob; its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        fs::write(self.path_of(&digest), bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    fn path_of(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// An image manifest over `layers` with a config unique to `name`.
    fn image(&self, name: &str, layers: &[&[u8]], docker: bool) -> Value {
        let (manifest_type, config_type, layer_type) = if docker {
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        };
        let config = json!({"architecture": "amd64", "os": "linux",
            "config": {"Labels": {"name": name}}, "rootfs": {"type": "layers", "diff_ids": []}});
        let config = self.blob(config_type, config.to_string().as_bytes());
        let layers: Vec<Value> = layers.iter().map(|l| self.blob(layer_type, l)).collect();
        let m = json!({"schemaVersion": 2, "mediaType": manifest_type,
            "config": config, "layers": layers});
        self.blob(manifest_type, m.to_string().as_bytes())
    }

    /// An artifact: empty config, `artifactType`, one file, maybe a `subject`.
    fn artifact(&self, artifact_type: &str, file: &[u8], subject: Option<&Value>) -> Value {
        let config = self.blob("application/vnd.oci.empty.v1+json", b"{}");
        let layer = self.blob("text/plain", file);
        let mut m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type, "config": config, "layers": [layer]});
        if let Some(s) = subject {
            m["subject"] = s.clone();
        }
        let mut d = self.blob(OCI_MANIFEST, m.to_string().as_bytes());
        d["artifactType"] = json!(artifact_type);
        d
    }

    fn index(&self, children: &[(Value, &str)]) -> Value {
        let manifests: Vec<Value> = children
            .iter()
            .map(|(d, arch)| {
                let mut d = d.clone();
                d["platform"] = json!({"os": "linux", "architecture": arch});
                d
            })
            .collect();
        let i = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.blob(OCI_INDEX, i.to_string().as_bytes())
    }

    /// A cosign signature manifest of `digest`: a simple-signing payload, `signature` (base64)
    /// in the layer's annotation.
    fn signature(&self, payload: &[u8], signature: &str) -> Value {
        let config = self.blob(OCI_CONFIG, br#"{"architecture":"","os":""}"#);
        let mut layer = self.blob(SIMPLE_SIGNING, payload);
        layer["annotations"] = json!({"dev.cosignproject.cosign/signature": signature});
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": config, "layers": [layer]});
        self.blob(OCI_MANIFEST, m.to_string().as_bytes())
    }

    fn add(&mut self, desc: &Value, name: Option<&str>) {
        let mut d = desc.clone();
        if let Some(n) = name {
            d["annotations"] = json!({ REF_NAME: n });
        }
        self.entries.push(d);
    }

    fn finish(&self) {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries});
        fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

fn simple_signing(reference: &str, digest: &str) -> Vec<u8> {
    json!({"critical": {"identity": {"docker-reference": reference},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature"}, "optional": null})
    .to_string()
    .into_bytes()
}

/// Pseudo-random bytes (a layer's content: distinct per seed, incompressible like a real one).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(seed.to_le_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    out
}

// ------------------------------------------------------------------------------------ running

fn artifacts_exe() -> String {
    let exe = bin_dir().join("gdcloud-artifacts");
    assert!(
        exe.is_file(),
        "gdcloud-artifacts is not built: run `cargo build --workspace` first"
    );
    exe.to_str().unwrap().to_string()
}

/// `gdcloud-artifacts ARGS` as the registry's user (`--username`, password on stdin), trusting
/// its CA when TLS.
fn load_cmd(env: &TestEnv, reg: &Registry, args: &[&str]) -> Command {
    let mut c = env.cmd(&artifacts_exe());
    c.args(["--format", "json", "load"]).args(args);
    c.args(["--username", &reg.username, "--password-stdin"]);
    if let Some(ca) = &reg.ca_cert {
        c.arg("--ca-cert-path").arg(ca);
    }
    c
}

fn load(env: &TestEnv, reg: &Registry, args: &[&str]) -> Output {
    let stdin = format!("{}\n", reg.password);
    run_timed(load_cmd(env, reg, args), stdin.as_bytes(), COMMAND_TIMEOUT)
}

fn report(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

/// `reference` → status, from a report.
fn statuses(r: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reference"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The digest of the manifest `reference` (`repo:tag` or `repo@digest`) names in the registry,
/// from its raw bytes as skopeo reads them.
fn remote_digest(reg: &Registry, reference: &str) -> Option<String> {
    let out = skopeo_cmd()
        .args(["inspect", "--raw", "--creds", &reg.creds()])
        .arg(reg.skopeo_tls_flag(""))
        .arg(format!("docker://{}/{reference}", reg.host))
        .output()
        .unwrap();
    out.status.success().then(|| sha256(&out.stdout))
}

/// Upload sessions the registry completed for `digest` (the closing `PUT …?digest=`), from its
/// access log (the combined-format lines: one per request).
fn uploads_of(reg: &Registry, digest: &str) -> usize {
    let escaped = digest.replace(':', "%3A");
    reg.log()
        .lines()
        .filter(|l| l.contains("\"PUT "))
        .filter(|l| l.contains("/blobs/uploads/"))
        .filter(|l| l.contains(digest) || l.contains(&escaped))
        .count()
}

/// Requests that change the registry (uploads, manifests), from its access log.
fn writes(reg: &Registry) -> usize {
    reg.log()
        .lines()
        .filter(|l| {
            ["\"PUT ", "\"POST ", "\"PATCH "]
                .iter()
                .any(|m| l.contains(m))
        })
        .count()
}

// --------------------------------------------------------------------------------------- tests

#[test]
fn a_bundle_loads_with_its_digests_blobs_mounted_once_and_a_rerun_skips_everything() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Token, true));
    let env = TestEnv::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let mut b = Bundle::new(&dir);
    let base = noise(1, 300_000);
    let amd = b.image("multi-amd64", &[&base, &noise(2, 1000)], false);
    let arm = b.image("multi-arm64", &[&base, &noise(3, 1000)], false);
    let multi = b.index(&[(amd.clone(), "amd64"), (arm.clone(), "arm64")]);
    b.add(&multi, Some("proj/multi:1.0"));
    let docker = b.image("docker", &[&base, &noise(4, 2000)], true);
    b.add(&docker, Some("proj/docker:1"));
    let art = b.artifact("application/vnd.example.thing", b"a thing", None);
    b.add(&art, Some("proj/art:1"));
    let nested = b.image("nested", &[&base], false);
    b.add(&nested, Some("p/a/b:t"));
    let docker_digest = docker["digest"].as_str().unwrap().to_string();
    let sig_tag = format!("sha256-{}.sig", docker_digest.trim_start_matches("sha256:"));
    let payload = simple_signing(&format!("{}/proj/docker:1", reg.host), &docker_digest);
    let sig = b.signature(&payload, "c2lnbmF0dXJl");
    b.add(&sig, Some(&format!("proj/docker:{sig_tag}")));
    // An SBOM referring to the Docker image, listed without a name.
    let sbom = b.artifact("application/spdx+json", b"{\"spdx\":1}", Some(&docker));
    b.add(&sbom, None);
    b.finish();
    let bundle = dir.to_str().unwrap();
    let host = reg.host.as_str();

    // The plan: everything to push, the shared base counted once, nothing sent.
    let before = writes(&reg);
    let plan = report(&load(&env, &reg, &[bundle, host, "--dry-run"]));
    assert!(
        statuses(&plan).iter().all(|(_, s)| s == "planned"),
        "{plan}"
    );
    assert_eq!(plan["refs"].as_array().unwrap().len(), 6, "{plan}");
    // Distinct blobs: base, 3 other layers, 4 image configs, the artifacts' empty config and 2
    // files, the signature's config and payload.
    assert_eq!(plan["blobs_to_send"], 13, "{plan}");
    assert_eq!(writes(&reg), before, "--dry-run sent nothing");
    let projects: Vec<&str> = plan["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["project"].as_str().unwrap())
        .collect();
    assert_eq!(projects, ["p", "proj"], "{plan}");

    let out = load(&env, &reg, &[bundle, host]);
    let r = report(&out);
    assert!(out.status.success(), "{r}\n{}", stderr(&out));
    let sbom_ref = format!("proj/docker@{}", sbom["digest"].as_str().unwrap());
    let want = [
        ("p/a/b:t".to_string(), &nested),
        ("proj/art:1".into(), &art),
        ("proj/docker:1".into(), &docker),
        (format!("proj/docker:{sig_tag}"), &sig),
        (sbom_ref.clone(), &sbom),
        ("proj/multi:1.0".into(), &multi),
    ];
    let got = statuses(&r);
    for ((name, desc), (reference, status)) in want.iter().zip(&got) {
        assert_eq!((name, status.as_str()), (reference, "pushed"), "{r}");
        assert_eq!(
            remote_digest(&reg, name).as_deref(),
            desc["digest"].as_str(),
            "{name} keeps its digest"
        );
    }
    for child in [&amd, &arm] {
        let d = child["digest"].as_str().unwrap();
        assert_eq!(
            remote_digest(&reg, &format!("proj/multi@{d}")).as_deref(),
            Some(d)
        );
    }
    assert_eq!(r["blobs_uploaded"], 13, "{r}");
    // The base layer: uploaded into one repository, mounted into the two others; the empty
    // config of the artifacts, mounted into the SBOM's repository.
    assert_eq!(r["blobs_mounted"], 3, "{r}");
    assert_eq!(uploads_of(&reg, &sha256(&base)), 1, "{}", reg.log());

    // Everything is there: skipped with one HEAD per entry, nothing written.
    let before = writes(&reg);
    let heads_before = reg
        .log()
        .lines()
        .filter(|l| l.contains("\"HEAD ") && l.contains("/blobs/"))
        .count();
    let started = Instant::now();
    let out = load(&env, &reg, &[bundle, host]);
    let elapsed = started.elapsed();
    let r = report(&out);
    assert!(out.status.success(), "{r}");
    assert!(statuses(&r).iter().all(|(_, s)| s == "skipped"), "{r}");
    assert_eq!(r["blobs_uploaded"], 0, "{r}");
    assert_eq!(writes(&reg), before, "a re-run writes nothing");
    let blob_heads = |reg: &Registry| {
        reg.log()
            .lines()
            .filter(|l| l.contains("\"HEAD ") && l.contains("/blobs/"))
            .count()
    };
    assert_eq!(blob_heads(&reg), heads_before, "nor asks about a blob");
    assert!(elapsed < Duration::from_secs(5), "re-run took {elapsed:?}");

    // --ref: one image, with its signature and its referrer.
    let plan = report(&load(
        &env,
        &reg,
        &[
            bundle,
            &format!("{host}/sel"),
            "--ref",
            "proj/docker:1",
            "--dry-run",
        ],
    ));
    let chosen: Vec<String> = statuses(&plan).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        chosen,
        [
            "sel/proj/docker:1".to_string(),
            format!("sel/proj/docker:{sig_tag}"),
            format!("sel/{sbom_ref}"),
        ],
        "{plan}"
    );

    // Under a prefix: new repositories, the same digests.
    let out = load(&env, &reg, &[bundle, &format!("{host}/mirror")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        remote_digest(&reg, "mirror/p/a/b:t").as_deref(),
        nested["digest"].as_str()
    );
}

/// A bundle of two images whose second has lost a layer.
fn broken_bundle(dir: &Path) -> (Value, Value) {
    let mut b = Bundle::new(dir);
    let good = b.image("good", &[&noise(10, 5000)], false);
    b.add(&good, Some("proj/good:1"));
    let lost = noise(11, 5000);
    let broken = b.image("broken", &[&lost], false);
    b.add(&broken, Some("proj/broken:1"));
    // A name that would drive the terminal: refused, and never printed raw.
    b.add(&good, Some("proj/evil:1\u{1b}]0;x\u{7}"));
    b.finish();
    fs::remove_file(b.path_of(&sha256(&lost))).unwrap();
    (good, broken)
}

#[test]
fn a_broken_entry_stops_the_load_or_with_continue_on_error_fails_alone() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let env = TestEnv::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let (good, _) = broken_bundle(&dir);
    let bundle = dir.to_str().unwrap();

    let before = writes(&reg);
    let out = load(&env, &reg, &[bundle, &reg.host]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = error_line(&out);
    assert!(
        e.contains("proj/broken:1 cannot be loaded") && e.contains("--continue-on-error"),
        "{e}"
    );
    assert_eq!(writes(&reg), before, "nothing was sent");

    let out = load(&env, &reg, &[bundle, &reg.host, "--continue-on-error"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = report(&out);
    let got = statuses(&r);
    assert_eq!(got.len(), 3, "{r}");
    assert!(
        got.contains(&("proj/broken:1".into(), "failed".into())),
        "{r}"
    );
    assert!(
        got.contains(&("proj/good:1".into(), "pushed".into())),
        "{r}"
    );
    let evil = got.iter().find(|(name, _)| name.contains("evil")).unwrap();
    assert_eq!(evil.1, "failed", "{r}");
    assert!(
        !evil.0.chars().any(char::is_control),
        "escaped: {:?}",
        evil.0
    );
    let broken = r["refs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reference"] == "proj/broken:1")
        .unwrap();
    let reason = broken["reason"].as_str().unwrap();
    assert!(reason.contains("missing from the layout"), "{reason}");
    assert!(!reason.contains('\n'), "one line: {reason}");
    assert_eq!(
        remote_digest(&reg, "proj/good:1").as_deref(),
        good["digest"].as_str()
    );
    assert_eq!(remote_digest(&reg, "proj/broken:1"), None);
}

/// `curl -I` of a blob, as the registry's user: whether the registry has it in `repo`.
fn has_blob(reg: &Registry, repo: &str, digest: &str) -> bool {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", "-u"])
        .arg(reg.creds())
        .arg(format!("{}/v2/{repo}/blobs/{digest}", reg.url()))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout) == "200"
}

#[test]
fn a_killed_load_finishes_on_a_rerun_without_sending_again_what_was_complete() {
    util::registry::require_tool("curl");
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let proxy = Proxy::start(&reg.host);
    let env = TestEnv::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let mut b = Bundle::new(&dir);
    let (mut blobs, mut images) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let layer = noise(20 + i, 20_000);
        let d = b.image(&format!("small{i}"), &[&layer], false);
        b.add(&d, Some(&format!("proj/small{i}:1")));
        blobs.push((format!("proj/small{i}"), sha256(&layer)));
        images.push((format!("proj/small{i}:1"), d));
    }
    let big = noise(30, 96 << 20);
    let big_desc = b.image("big", &[&big], false);
    b.add(&big_desc, Some("proj/big:1"));
    images.push(("proj/big:1".into(), big_desc));
    b.finish();
    blobs.push(("proj/big".into(), sha256(&big)));
    let bundle = dir.to_str().unwrap();
    let dest = format!("http://{}", proxy_host(&proxy));
    let args = [
        bundle,
        dest.as_str(),
        "--concurrency",
        "1",
        "--chunk-size-mib",
        "1",
    ];

    // Killed (SIGKILL) once the big layer's chunks are going up.
    let mut c = load_cmd(&env, &reg, &args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", reg.password).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !proxy.requests().iter().any(|r| r.method == "PATCH") {
        assert!(Instant::now() < deadline, "no PATCH: {}", proxy.log());
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before the big layer"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        remote_digest(&reg, "proj/big:1"),
        None,
        "killed before the end"
    );
    let present: Vec<String> = blobs
        .iter()
        .filter(|(repo, d)| has_blob(&reg, repo, d))
        .map(|(_, d)| d.clone())
        .collect();
    assert!(
        !present.contains(&sha256(&big)),
        "the big layer is not complete"
    );

    proxy.clear_requests();
    let out = load(&env, &reg, &args);
    let r = report(&out);
    assert!(out.status.success(), "{r}\n{}", stderr(&out));
    for (reference, status) in statuses(&r) {
        let pushed_before = reference.starts_with("proj/small");
        assert!(
            status == "pushed" || (pushed_before && status == "skipped"),
            "{reference}: {status}"
        );
    }
    let resent: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("/blobs/uploads/"))
        .map(|r| r.target.clone())
        .filter(|t| {
            present
                .iter()
                .any(|d| t.contains(&d.replace(':', "%3A")) || t.contains(d))
        })
        .collect();
    assert!(resent.is_empty(), "complete blobs sent again: {resent:?}");
    for (name, desc) in &images {
        assert_eq!(
            remote_digest(&reg, name).as_deref(),
            desc["digest"].as_str()
        );
    }
}

fn proxy_host(proxy: &Proxy) -> String {
    proxy.host.clone()
}

// ------------------------------------------------------------------------------- verification

/// A P-256 key pair: `cosign.pub` written in `dir`, the signer returned.
fn signing_key(dir: &Path) -> (EcdsaKeyPair, PathBuf) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // SubjectPublicKeyInfo of a P-256 key (RFC 5480): a fixed prefix, then the point.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(pair.public_key().as_ref());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&spki);
    let public = dir.join("cosign.pub");
    fs::write(
        &public,
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
    )
    .unwrap();
    (pair, public)
}

#[test]
fn verify_refuses_an_unsigned_image_before_sending_anything() {
    let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
    let env = TestEnv::new();
    let tmp = tempfile::tempdir().unwrap();
    let (pair, public) = signing_key(tmp.path());
    let dir = tmp.path().join("bundle");
    let mut b = Bundle::new(&dir);
    let signed = b.image("signed", &[&noise(40, 4000)], false);
    b.add(&signed, Some("proj/signed:1"));
    let digest = signed["digest"].as_str().unwrap();
    let payload = simple_signing(&format!("{}/proj/signed:1", reg.host), digest);
    let sig = pair.sign(&SystemRandom::new(), &payload).unwrap();
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.as_ref());
    let sig_desc = b.signature(&payload, &sig);
    let sig_tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    b.add(&sig_desc, Some(&format!("proj/signed:{sig_tag}")));
    let unsigned = b.image("unsigned", &[&noise(41, 4000)], false);
    b.add(&unsigned, Some("proj/unsigned:1"));
    b.finish();
    let bundle = dir.to_str().unwrap();
    let key = public.to_str().unwrap();

    let before = writes(&reg);
    let out = load(&env, &reg, &[bundle, &reg.host, "--verify", "--key", key]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = error_line(&out);
    assert!(e.contains("proj/unsigned:1 is refused by --verify"), "{e}");
    assert_eq!(writes(&reg), before, "nothing was sent");

    let out = load(
        &env,
        &reg,
        &[
            bundle,
            &reg.host,
            "--verify",
            "--key",
            key,
            "--continue-on-error",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(
        statuses(&r),
        [
            ("proj/signed:1".to_string(), "pushed".to_string()),
            (format!("proj/signed:{sig_tag}"), "pushed".into()),
            ("proj/unsigned:1".into(), "refused".into()),
        ],
        "{r}"
    );
    assert_eq!(
        r["transparency_log"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
    assert_eq!(remote_digest(&reg, "proj/unsigned:1"), None);
    assert_eq!(
        remote_digest(&reg, "proj/signed:1").as_deref(),
        Some(digest)
    );
}
