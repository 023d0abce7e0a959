//! `extract` reads an image's config and manifests whole: a huge one is refused before it is read
//! into memory (a 1 GiB config once took 3.1 GB of RSS), and ref names from the layout's
//! index.json reach the terminal with their control characters made visible.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use gdcloud::oci::{self, Digest};
use gdcloud::ops::extract::{run, Options};
use gdcloud::progress::Hidden;

/// A layout whose one image (ref `ref_name`) has a config of `config_size` zero bytes (sparse).
fn layout(dir: &Path, config_size: u64, ref_name: &str) -> std::path::PathBuf {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let tmp = blobs.join("config.tmp");
    let f = fs::File::create(&tmp).unwrap();
    f.set_len(config_size).unwrap();
    let mut hasher = sha2_digest(&tmp);
    let config_digest = Digest::parse(&format!("sha256:{}", hasher.remove(0))).unwrap();
    fs::rename(&tmp, blobs.join(config_digest.hex())).unwrap();
    let layer = b"";
    let layer_digest = Digest::sha256_of(layer);
    fs::write(blobs.join(layer_digest.hex()), layer).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": oci::OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": oci::OCI_LAYER_GZIP, "digest": layer_digest, "size": 0}],
    }))
    .unwrap();
    let md = Digest::sha256_of(&manifest);
    fs::write(blobs.join(md.hex()), &manifest).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": oci::OCI_MANIFEST, "digest": md, "size": manifest.len(),
        "annotations": {oci::ANNOTATION_REF_NAME: ref_name}}]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

fn sha2_digest(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    vec![s.split_whitespace().next().unwrap().to_string()]
}

#[test]
fn a_huge_config_is_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let l = layout(tmp.path(), 64 << 20, "v1");
    let started = Instant::now();
    let err = run(
        &Options {
            source: l,
            destination: tmp.path().join("out"),
            ..Options::default()
        },
        &Hidden,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("config of") && err.contains("larger than 4 MiB"),
        "unexpected error: {err}"
    );
    assert!(!err.contains('\n'), "not one line: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn available_ref_names_are_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let l = layout(tmp.path(), 2, "v1\u{1b}[2J\nfake");
    let mut source = l.into_os_string();
    source.push(":nope");
    let err = run(
        &Options {
            source: source.into(),
            destination: tmp.path().join("out"),
            ..Options::default()
        },
        &Hidden,
    )
    .unwrap_err()
    .to_string();
    assert!(
        !err.contains('\u{1b}') && !err.contains('\n'),
        "raw control characters: {err:?}"
    );
    assert!(err.contains("v1"), "the name is not listed: {err:?}");
}
