//! `gdcloud-artifacts verify` (and `pull --verify`, `extract --verify`) against signatures made by
//! a real signer and judged by a real verifier. Debian's skopeo and podman (1.9.3 / 4.3.1) are
//! built with sigstore disabled ("Debian-local change: sigstore disabled": they can neither sign
//! nor verify), so both roles go to sigstore-rs, the Sigstore project's Rust implementation of
//! cosign: it reads cosign's encrypted private key, which [`SigningKey`] writes (scrypt + NaCl
//! secretbox over PKCS#8, PEM `ENCRYPTED COSIGN PRIVATE KEY`), signs into `.sig` tags of a real
//! Distribution registry, and verifies them with a public key. On every row of the issue's table
//! (good; wrong key; payload naming another digest; tampered payload; no signature; one platform
//! of an index signed) our verdict must equal its; cosign does not check identities, so the
//! identity rows are judged by containers-policy.json(5)'s rules instead.

use crate::util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use util::cosign::{SigningKey, PASSPHRASE};
use util::env::*;
use util::image::{skopeo_cmd, tiny_image_layout, TAG};
use util::registry::{require_tool, Registry, RegistryAuth, RegistryOptions};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
// The signing keys (cosign's encrypted format) are util::cosign's.

// -------------------------------------------------------------------------------- the world

/// One registry, two keys, a runtime for sigstore-rs, and skopeo's policy for plain copies.
struct World {
    reg: Registry,
    env: TestEnv,
    dir: tempfile::TempDir,
    key: SigningKey,
    other: SigningKey,
    accept_all: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl World {
    fn new() -> World {
        require_tool("skopeo");
        let reg = Registry::start(RegistryOptions::new(RegistryAuth::Htpasswd, false));
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::new(dir.path(), "cosign");
        let other = SigningKey::new(dir.path(), "other");
        let accept_all = dir.path().join("accept.json");
        fs::write(
            &accept_all,
            json!({"default": [{"type": "insecureAcceptAnything"}]}).to_string(),
        )
        .unwrap();
        World {
            reg,
            env: TestEnv::new(),
            dir,
            key,
            other,
            accept_all,
            rt: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    /// A policy.json requiring a signature by `key` on this registry's images (with
    /// `signed_identity` when given), rejecting everything else.
    fn policy(&self, name: &str, key: &SigningKey, signed_identity: Option<Value>) -> PathBuf {
        let mut req = json!({"type": "sigstoreSigned", "keyPath": key.public});
        if let Some(s) = signed_identity {
            req["signedIdentity"] = s;
        }
        let doc = json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {self.reg.host.clone(): [req]}},
        });
        let path = self.dir.path().join(format!("{name}.json"));
        fs::write(&path, doc.to_string()).unwrap();
        path
    }

    fn docker(&self, reference: &str) -> String {
        format!("docker://{}/{reference}", self.reg.host)
    }

    /// `skopeo copy SRC docker://HOST/DEST` (no signature).
    fn copy_to(&self, src: &str, dest: &str, extra: &[&str]) {
        run_ok(
            skopeo_cmd()
                .arg("--policy")
                .arg(&self.accept_all)
                .arg("copy")
                .args(extra)
                .args(["--dest-creds", &self.reg.creds(), "--dest-tls-verify=false"])
                .arg(src)
                .arg(self.docker(dest)),
        );
    }

    fn cosign_client(&self) -> (sigstore::cosign::Client, sigstore::registry::Auth) {
        let config = sigstore::registry::ClientConfig {
            protocol: sigstore::registry::ClientProtocol::Http,
            ..Default::default()
        };
        let client = sigstore::cosign::ClientBuilder::default()
            .with_oci_client_config(config)
            .build()
            .unwrap();
        let auth =
            sigstore::registry::Auth::Basic(self.reg.username.clone(), self.reg.password.clone());
        (client, auth)
    }

    fn oci_ref(&self, reference: &str) -> sigstore::registry::OciReference {
        format!("{}/{reference}", self.reg.host).parse().unwrap()
    }

    /// Signs what `reference` (`repo:tag`, or `repo@digest`) names with `key`'s encrypted
    /// private key, as cosign does: the payload names `HOST/reference` and the manifest digest,
    /// and goes under the digest's `.sig` tag.
    fn sign(&self, reference: &str, key: &SigningKey) {
        use sigstore::cosign::constraint::{Constraint, PrivateKeySigner};
        use sigstore::cosign::CosignCapabilities;
        let image = self.oci_ref(reference);
        let signer = PrivateKeySigner::new_with_raw(
            zeroize::Zeroizing::new(fs::read(&key.private).unwrap()),
            zeroize::Zeroizing::new(PASSPHRASE.as_bytes().to_vec()),
            &sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1,
        )
        .expect("sigstore-rs reads the encrypted cosign key");
        self.rt.block_on(async {
            let (mut client, auth) = self.cosign_client();
            let (sig_image, digest) = client.triangulate(&image, &auth).await.unwrap();
            let mut layer =
                sigstore::cosign::SignatureLayer::new_unsigned(&image, &digest).unwrap();
            assert!(signer.add_constraint(&mut layer).unwrap(), "signed");
            client
                .push_signature(None, &auth, &sig_image, vec![layer])
                .await
                .unwrap();
        });
    }

    /// sigstore-rs's verdict on `reference` with `key`: a `.sig` layer whose payload names the
    /// image's digest, signed by the key.
    fn cosign_accepts(&self, reference: &str, key: &SigningKey) -> bool {
        use sigstore::cosign::verification_constraint::{
            PublicKeyVerifier, VerificationConstraint,
        };
        use sigstore::cosign::CosignCapabilities;
        let image = self.oci_ref(reference);
        let verifier = PublicKeyVerifier::try_from(&fs::read(&key.public).unwrap()).unwrap();
        let constraints: Vec<Box<dyn VerificationConstraint>> = vec![Box::new(verifier)];
        self.rt.block_on(async {
            let (mut client, auth) = self.cosign_client();
            let layers = client
                .trusted_signature_layers(&auth, &image)
                .await
                .unwrap_or_default();
            sigstore::cosign::verify_constraints(&layers, constraints.iter()).is_ok()
        })
    }

    /// `gdcloud-artifacts ARGS` with the registry's user (password on stdin).
    fn ours(&self, args: &[&str]) -> Output {
        let mut c = self.env.cmd(&artifacts_exe());
        c.args(args)
            .args(["--username", &self.reg.username, "--password-stdin"]);
        run_timed(c, self.reg.password.as_bytes(), COMMAND_TIMEOUT)
    }

    /// `verify --format json … http://HOST/REFERENCE`: the exit status and the report.
    fn verify(&self, trust: &[&str], reference: &str, extra: &[&str]) -> (bool, Value) {
        let target = format!("http://{}/{reference}", self.reg.host);
        let mut args = vec!["--format", "json", "verify", &target];
        args.extend_from_slice(trust);
        args.extend_from_slice(extra);
        let out = self.ours(&args);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON report ({e}):\n{}", stderr(&out)));
        let verdicts = report["verdicts"].as_array().unwrap();
        let all = verdicts.iter().all(|v| v["verified"] == true);
        assert_eq!(
            out.status.success(),
            all,
            "exit status follows the verdicts: {report}"
        );
        assert_eq!(
            report["transparency_log"],
            "no transparency log checked (offline verification)"
        );
        (out.status.success(), report)
    }

    fn digest(&self, reference: &str) -> String {
        let raw = run_ok(
            skopeo_cmd()
                .args([
                    "inspect",
                    "--raw",
                    "--creds",
                    &self.reg.creds(),
                    "--tls-verify=false",
                ])
                .arg(self.docker(reference)),
        );
        format!("sha256:{}", hex::encode(Sha256::digest(&raw)))
    }
}

fn artifacts_exe() -> String {
    let exe = bin_dir().join("gdcloud-artifacts");
    assert!(
        exe.is_file(),
        "gdcloud-artifacts is not built: run `cargo build --workspace` first"
    );
    exe.to_str().unwrap().to_string()
}

fn sig_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1) + ".sig"
}

// ---------------------------------------------------------------------------------- images

static MULTI: OnceLock<PathBuf> = OnceLock::new();

fn umoci(args: &[&str]) {
    require_tool("umoci");
    run_ok(Command::new("umoci").args(args));
}

/// A layout with `amd64` and `arm64` images and `multi`, an index of both; built once.
fn multi_layout() -> &'static Path {
    MULTI.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("verify-multi-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let layout = root.join("oci");
        let l = layout.display().to_string();
        umoci(&["init", "--layout", &l]);
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let image = format!("{l}:{arch}");
            umoci(&["new", "--image", &image]);
            umoci(&[
                "config",
                "--image",
                &image,
                "--architecture",
                arch,
                "--os",
                "linux",
            ]);
            let bundle = root.join(format!("bundle-{arch}"));
            let b = bundle.display().to_string();
            umoci(&["unpack", "--rootless", "--image", &image, &b]);
            fs::write(bundle.join("rootfs/arch.txt"), arch).unwrap();
            umoci(&["repack", "--image", &image, &b]);
            fs::remove_dir_all(&bundle).unwrap();
        }
        umoci(&["gc", "--layout", &l]);
        let index_path = layout.join("index.json");
        let mut top: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
        for d in top["manifests"].as_array().unwrap() {
            let arch = d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap();
            children.push(json!({
                "mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                "platform": {"architecture": arch, "os": "linux"},
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": children,
        }))
        .unwrap();
        let hex = hex::encode(Sha256::digest(&index));
        fs::write(layout.join("blobs/sha256").join(&hex), &index).unwrap();
        top["manifests"].as_array_mut().unwrap().push(json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"), "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
        fs::write(&index_path, serde_json::to_vec(&top).unwrap()).unwrap();
        layout
    })
}

fn tiny() -> String {
    format!("oci:{}:{TAG}", tiny_image_layout().display())
}

fn multi(name: &str) -> String {
    format!("oci:{}:{name}", multi_layout().display())
}

// ------------------------------------------------------------------- signature manipulation

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(bytes));
    fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// Pulls `repo`'s `.sig` manifest of `digest` into a layout (with our pull: it keeps the
/// manifest as it is), lets `edit` change its payload bytes, and pushes the result (with our
/// push, which keeps the manifest's bytes) under the `.sig` tag of `target`. The layer keeps
/// its signature annotation.
fn rewrite_signature(
    w: &World,
    repo: &str,
    digest: &str,
    target: &str,
    edit: &dyn Fn(&mut Vec<u8>),
) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("sig");
    let layout_s = layout.display().to_string();
    let from = format!("http://{}/{repo}:{}", w.reg.host, sig_tag(digest));
    ok(&w.ours(&["pull", &from, &layout_s]));
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path);
    let entry = &mut index["manifests"][0];
    let mut manifest: Value =
        serde_json::from_slice(&blob(&layout, entry["digest"].as_str().unwrap())).unwrap();
    let layer = &mut manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let mut payload = blob(&layout, layer["digest"].as_str().unwrap());
    edit(&mut payload);
    layer["digest"] = json!(write_blob(&layout, &payload));
    layer["size"] = json!(payload.len());
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let new_digest = write_blob(&layout, &bytes);
    entry["digest"] = json!(new_digest);
    entry["size"] = json!(bytes.len());
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let to = format!("http://{}/{repo}:{}", w.reg.host, sig_tag(target));
    ok(&w.ours(&["push", &layout_s, &to]));
    assert_eq!(w.digest(&format!("{repo}:{}", sig_tag(target))), new_digest);
}

// --------------------------------------------------------------------------------- the table

/// One row: a reference judged by sigstore-rs (`cosign`: its verdict, or `None` where cosign
/// has no rule, the identity rows) and by us with `trust` and `ours` flags.
struct Row<'a> {
    name: &'a str,
    reference: String,
    trust: Vec<String>,
    ours: Vec<&'a str>,
    /// What sigstore-rs is asked about (`repo:tag` or `repo@digest`), with which key.
    cosign: Option<(String, &'a SigningKey)>,
    accepted: bool,
    /// What our reason says (the first refused verdict's, or the first verdict's).
    reason: &'a str,
}

/// The signed world of the table: returns the digests of tiny, of amd64 and of the index.
fn sign_the_table(w: &World) -> (String, String, String) {
    w.copy_to(&tiny(), "good/app:1", &[]);
    w.sign("good/app:1", &w.key);
    let tiny_digest = w.digest("good/app:1");
    // Identity mismatch: the same image under tag 2; its one signature names tag 1.
    w.copy_to(&tiny(), "ident/app:1", &[]);
    w.sign("ident/app:1", &w.key);
    w.copy_to(&tiny(), "ident/app:2", &[]);
    w.copy_to(&tiny(), "unsigned/app:1", &[]);
    // Another digest: tiny's signature (made for swapped/app:1) under amd64's `.sig` tag, with
    // amd64 now at swapped/app:1.
    w.copy_to(&tiny(), "swapped/app:1", &[]);
    w.sign("swapped/app:1", &w.key);
    w.copy_to(&multi("amd64"), "swapped/app:1", &[]);
    let amd64_digest = w.digest("swapped/app:1");
    rewrite_signature(w, "swapped/app", &tiny_digest, &amd64_digest, &|_| {});
    // Tampered payload: one byte of the signed JSON added, the signature kept.
    w.copy_to(&tiny(), "tampered/app:1", &[]);
    w.sign("tampered/app:1", &w.key);
    rewrite_signature(w, "tampered/app", &tiny_digest, &tiny_digest, &|p| {
        let at = p.iter().position(|&b| b == b'{').unwrap();
        p.insert(at + 1, b' ');
    });
    // An index whose amd64 image alone is signed (as onearch/app:1), and an index signed whole.
    w.copy_to(&multi("amd64"), "onearch/app:1", &[]);
    w.sign("onearch/app:1", &w.key);
    w.copy_to(&multi("multi"), "onearch/app:1", &["--all"]);
    w.copy_to(&multi("multi"), "signedidx/app:1", &["--all"]);
    w.sign("signedidx/app:1", &w.key);
    let index_digest = w.digest("signedidx/app:1");
    (tiny_digest, amd64_digest, index_digest)
}

#[test]
fn our_verdicts_equal_cosigns_on_the_issue_table() {
    let w = World::new();
    let (_, amd64, _) = sign_the_table(&w);
    let arm64 = w.digest_of_platform("onearch/app:1", "arm64");
    let good = w.policy("good", &w.key, None);
    let wrong = w.policy("wrong", &w.other, None);
    let by_repo = w.policy("repo", &w.key, Some(json!({"type": "matchRepository"})));
    let key = vec!["--key".to_string(), w.key.public.display().to_string()];
    let policy = |p: &Path| vec!["--policy".to_string(), p.display().to_string()];
    let r = |s: &str| s.to_string();
    let c = |s: &str, k| Some((s.to_string(), k));
    let (k, o) = (&w.key, &w.other);
    let rows = vec![
        Row {
            name: "good (--key)",
            reference: r("good/app:1"),
            trust: key.clone(),
            ours: vec![],
            cosign: c("good/app:1", k),
            accepted: true,
            reason: "signed by the ECDSA P-256 key as",
        },
        Row {
            name: "good (--policy)",
            reference: r("good/app:1"),
            trust: policy(&good),
            ours: vec![],
            cosign: c("good/app:1", k),
            accepted: true,
            reason: "signed by the ECDSA P-256 key as",
        },
        Row {
            name: "wrong key",
            reference: r("good/app:1"),
            trust: policy(&wrong),
            ours: vec![],
            cosign: c("good/app:1", o),
            accepted: false,
            reason: "does not verify with the given key",
        },
        Row {
            name: "payload names another digest",
            reference: r("swapped/app:1"),
            trust: key.clone(),
            ours: vec![],
            cosign: c("swapped/app:1", k),
            accepted: false,
            reason: "the signature is for sha256:",
        },
        Row {
            name: "tampered payload",
            reference: r("tampered/app:1"),
            trust: key.clone(),
            ours: vec![],
            cosign: c("tampered/app:1", k),
            accepted: false,
            reason: "does not verify with the given key",
        },
        Row {
            name: "no signature",
            reference: r("unsigned/app:1"),
            trust: key.clone(),
            ours: vec![],
            cosign: c("unsigned/app:1", k),
            accepted: false,
            reason: "no signature",
        },
        Row {
            name: "identity mismatch",
            reference: r("ident/app:2"),
            trust: policy(&good),
            ours: vec![],
            cosign: None,
            accepted: false,
            reason: "signed identity",
        },
        Row {
            name: "identity mismatch, matchRepository",
            reference: r("ident/app:2"),
            trust: policy(&by_repo),
            ours: vec![],
            cosign: None,
            accepted: true,
            reason: "signed by",
        },
        Row {
            name: "index, one platform signed: the index",
            reference: r("onearch/app:1"),
            trust: key.clone(),
            ours: vec![],
            cosign: c("onearch/app:1", k),
            accepted: false,
            reason: "no signature",
        },
        Row {
            name: "index, one platform signed: that platform",
            reference: r("onearch/app:1"),
            trust: key.clone(),
            ours: vec!["--platform", "linux/amd64"],
            cosign: c(&format!("onearch/app@{amd64}"), k),
            accepted: true,
            reason: "signed by",
        },
        Row {
            name: "index, one platform signed: the other",
            reference: r("onearch/app:1"),
            trust: key.clone(),
            ours: vec!["--platform", "linux/arm64"],
            cosign: c(&format!("onearch/app@{arm64}"), k),
            accepted: false,
            reason: "no signature",
        },
        Row {
            name: "index, one platform signed: every platform",
            reference: r("onearch/app:1"),
            trust: key.clone(),
            ours: vec!["--all-platforms"],
            cosign: None,
            accepted: false,
            reason: "no signature",
        },
        Row {
            name: "index signed whole",
            reference: r("signedidx/app:1"),
            trust: key.clone(),
            ours: vec![],
            cosign: c("signedidx/app:1", k),
            accepted: true,
            reason: "signed by",
        },
    ];
    let mut mismatches = Vec::new();
    for row in &rows {
        let trust: Vec<&str> = row.trust.iter().map(String::as_str).collect();
        let (ours, report) = w.verify(&trust, &row.reference, &row.ours);
        let theirs = row.cosign.as_ref().map(|(r, k)| w.cosign_accepts(r, k));
        let verdicts = report["verdicts"].as_array().unwrap();
        let shown = verdicts
            .iter()
            .find(|v| v["verified"] == false)
            .unwrap_or(&verdicts[0]);
        let reason = shown["reason"].as_str().unwrap();
        if theirs.is_some_and(|t| t != ours) || ours != row.accepted || !reason.contains(row.reason)
        {
            mismatches.push(format!(
                "{}: ours {ours} ({reason}), sigstore-rs {theirs:?}, expected {}",
                row.name, row.accepted
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "registry {}:\n{}",
        w.reg.host,
        mismatches.join("\n")
    );
}

impl World {
    /// The digest of `arch`'s manifest in the index at `reference`.
    fn digest_of_platform(&self, reference: &str, arch: &str) -> String {
        let raw = run_ok(
            skopeo_cmd()
                .args([
                    "inspect",
                    "--raw",
                    "--creds",
                    &self.reg.creds(),
                    "--tls-verify=false",
                ])
                .arg(self.docker(reference)),
        );
        let index: Value = serde_json::from_slice(&raw).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

// ------------------------------------------------------- layouts, pull --verify, extract --verify

/// `skopeo copy docker://HOST/REFERENCE oci:LAYOUT:NAME`, keeping the manifest as it is (a
/// signature's JSON layer stays uncompressed).
fn to_layout(w: &World, reference: &str, layout: &Path, name: &str) {
    run_ok(
        skopeo_cmd()
            .arg("--policy")
            .arg(&w.accept_all)
            .args([
                "copy",
                "--dest-oci-accept-uncompressed-layers",
                "--preserve-digests",
            ])
            .args(["--src-creds", &w.reg.creds(), "--src-tls-verify=false"])
            .arg(w.docker(reference))
            .arg(format!("oci:{}:{name}", layout.display())),
    );
}

#[test]
fn a_bundle_layout_is_verified_offline_and_extract_verify_refuses_before_writing() {
    let w = World::new();
    w.copy_to(&tiny(), "proj/app:1", &[]);
    w.sign("proj/app:1", &w.key);
    w.copy_to(&multi("amd64"), "proj/other:1", &[]);
    let digest = w.digest("proj/app:1");
    let bundle = w.env.path().join("bundle");
    to_layout(&w, "proj/app:1", &bundle, "proj/app:1");
    let sig = format!("proj/app:{}", sig_tag(&digest));
    to_layout(&w, &sig, &bundle, &sig);
    to_layout(&w, "proj/other:1", &bundle, "proj/other:1");
    // Bundle names carry no host: the identity takes artifacts/registry's.
    w.env.set_property("artifacts", "registry", &w.reg.host);
    let key = w.key.public.display().to_string();
    let b = bundle.display().to_string();
    let verify = |name: &str, trust: &[&str]| {
        let mut args = vec!["--format", "json", "verify", &b, "--image-name", name];
        args.extend_from_slice(trust);
        w.env.run(&artifacts_exe(), &args, b"")
    };

    let out = verify("proj/app:1", &["--key", &key]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    let v = &report["verdicts"][0];
    assert_eq!(v["verified"], true, "{report}");
    assert_eq!(v["digest"], digest.as_str());
    let signed_as = format!("signed by the ECDSA P-256 key as {}/proj/app:1", w.reg.host);
    // --key checks the key and the digest, not the name (as cosign verify --key).
    let by_key =
        format!("{signed_as} (name not checked with --key, as cosign; --policy checks it)");
    assert_eq!(v["reason"], by_key.as_str());
    // The same key file through a policy.json: the same verdict, the name checked.
    let good = w.policy("good", &w.key, None);
    let out = verify("proj/app:1", &["--policy", good.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["verdicts"][0]["reason"], signed_as.as_str());

    let out = verify("proj/other:1", &["--key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdicts"][0]["verified"], false);
    assert_eq!(
        report["verdicts"][0]["reason"],
        "no signature: a signature is required"
    );
    // The other key refuses the signed image.
    let other = w.other.public.display().to_string();
    let out = verify("proj/app:1", &["--key", &other]);
    assert_eq!(out.status.code(), Some(1));

    // extract --verify: the signed image is extracted, the unsigned one refused untouched.
    let dest = w.env.path().join("rootfs");
    let d = dest.display().to_string();
    let args = [
        "extract",
        &b,
        &d,
        "--image-name",
        "proj/app:1",
        "--verify",
        "--key",
        &key,
    ];
    ok(&w.env.run(&artifacts_exe(), &args, b""));
    assert!(dest.join(util::image::HELLO_PATH).is_file());
    let dest = w.env.path().join("refused");
    let d = dest.display().to_string();
    let args = [
        "extract",
        &b,
        &d,
        "--image-name",
        "proj/other:1",
        "--verify",
        "--key",
        &key,
    ];
    let line = error_line(&w.env.run(&artifacts_exe(), &args, b""));
    assert!(
        line.contains("is refused by --verify: no signature"),
        "{line}"
    );
    assert!(!dest.exists(), "nothing written for a refused image");
}

#[test]
fn pull_verify_refuses_before_writing_and_pulls_what_is_signed() {
    let w = World::new();
    w.copy_to(&tiny(), "proj/app:1", &[]);
    w.sign("proj/app:1", &w.key);
    w.copy_to(&tiny(), "proj/unsigned:1", &[]);
    let key = w.key.public.display().to_string();
    let pull = |reference: &str, dest: &Path, trust: &[&str]| {
        let from = format!("http://{}/{reference}", w.reg.host);
        let d = dest.display().to_string();
        let mut args = vec!["--format", "json", "pull", &from, &d, "--verify"];
        args.extend_from_slice(trust);
        w.ours(&args)
    };
    let dest = w.env.path().join("signed");
    let report: Value =
        serde_json::from_str(&ok(&pull("proj/app:1", &dest, &["--key", &key]))).unwrap();
    assert_eq!(report["verified"][0]["verified"], true, "{report}");
    assert!(dest.join("index.json").is_file());

    for (reference, trust, why) in [
        (
            "proj/unsigned:1",
            vec!["--key", key.as_str()],
            "no signature",
        ),
        (
            "proj/app:1",
            vec!["--key", w.other.public.to_str().unwrap()],
            "does not verify",
        ),
    ] {
        let dest = w.env.path().join("refused");
        let err = failed(&pull(reference, &dest, &trust));
        let line = err
            .lines()
            .find(|l| l.starts_with("ERROR: "))
            .unwrap_or_default();
        assert!(
            line.contains("is refused by --verify: ") && line.contains(why),
            "{err}"
        );
        assert!(!dest.exists(), "{reference}: nothing written");
    }
    // --verify without a key or policy is a usage error.
    let d = w.env.path().join("x").display().to_string();
    let from = format!("http://{}/proj/app:1", w.reg.host);
    let out = w.ours(&["pull", &from, &d, "--verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
