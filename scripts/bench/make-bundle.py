#!/usr/bin/env python3
"""Write a signed OCI layout bundle: many images, some multi-platform indexes, cosign signatures.

The bundle is what `gdcloud artifacts tree` and `load` read: one OCI image layout whose index.json
names every image `projN/repoM:tag` (org.opencontainers.image.ref.name) and, beside each, its
cosign signature `projN/repoM:sha256-<hex>.sig`. It serves the bundle benchmark
(scripts/bench/bundle.sh) and the runbook demo (`--images 3 --indexes 1`).

Images: 3-5 gzip tar layers each. Every image starts with 2 or 3 of a small pool of shared base
layers (so a loader that sends each blob once per registry has something to deduplicate), then
1-3 layers of its own. A layer is a tar holding one file of fresh random bytes (os.urandom: a new
bundle never repeats an old one's blobs, so nothing can be found already present by accident);
sizes are log-uniform between --min-layer and --max-layer. Each image has its own OCI config
(with the right diff_ids), so `skopeo`, `umoci` and our `extract` can unpack it. About 10% of the
images are OCI indexes of two platform manifests (linux/amd64 and linux/arm64).

Signatures are what `cosign sign --key` writes (sigstore/cosign specs/SIGNATURE_SPEC.md): an OCI
manifest whose one layer (application/vnd.dev.cosign.simplesigning.v1+json) is the simple-signing
payload, exactly as cosign marshals it (Go encoding/json, no spaces, `"optional":null`):
  {"critical":{"identity":{"docker-reference":"HOST/projN/repoM"},
   "image":{"docker-manifest-digest":"sha256:..."},"type":"cosign container image signature"},
   "optional":null}
with the layer annotation dev.cosignproject.cosign/signature = base64 of the ECDSA P-256 (ASN.1
DER) signature over the payload bytes, made by `openssl dgst -sha256 -sign`. The config is the one
go-containerregistry gives cosign's signature image (empty architecture/os, zero `created`, the
payload digest as its one diff_id). An index is signed once, by its own digest (as `cosign sign`
does without --recursive).

cosign puts the repository alone in docker-reference (no tag). `gdcloud artifacts verify --key`
checks the key and the digest and not that name, as `cosign verify --key` does; a containers
policy's default signedIdentity, matchRepoDigestOrExact, wants the exact tag for an image named by
tag, so skopeo with such a policy refuses it (podman's documentation has cosign users say
matchRepository). So the bundle also comes with BUNDLE.policy.json: a sigstoreSigned requirement
with that key and matchRepository for the --identity-registry host (`verify --policy` accepts
every image with it).
--identity-with-tag writes `HOST/projN/repoM:tag` instead, as skopeo's
--sign-by-sigstore-private-key does.

The public key (PEM, SubjectPublicKeyInfo, what `cosign public-key` prints) is written beside the
bundle as BUNDLE.pub (or --public-key PATH). The private key is made in a temp dir and deleted,
unless --private-key PATH names one to reuse (or to create when missing).

Usage: make-bundle.py BUNDLE [--images N] [--indexes K] [--projects P] [--repos R]
                      [--min-layer SIZE] [--max-layer SIZE] [--identity-registry HOST]
                      [--identity-with-tag] [--public-key PATH] [--private-key PATH] [--seed S] [--quiet]
SIZE takes a K/M suffix (KiB/MiB). Needs python3 (stdlib) and the openssl CLI.
Prints one JSON line on stdout: the counts (images, indexes, refs, blobs, bytes) and paths.
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
REF_NAME = "org.opencontainers.image.ref.name"
BASE_LAYERS = 3
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


def size_arg(s):
    units = {"k": 1024, "m": 1024 * 1024, "": 1}
    s = s.strip().lower().removesuffix("ib").removesuffix("b")
    unit = s[-1:] if s[-1:] in ("k", "m") else ""
    try:
        n = int(float(s[: len(s) - len(unit)]) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError("not a size: %r (say e.g. 64K or 2M)" % s)
    if n < 1:
        raise argparse.ArgumentTypeError("a size must be at least 1 byte")
    return n


def canonical(obj):
    """JSON as Go's encoding/json writes it for these structs (field order kept, no spaces)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Layout:
    """An OCI image layout being written: content-addressed blobs, the top-level index."""

    def __init__(self, root):
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blob_dir)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        self.entries = []
        self.blob_count = 0
        self.blob_bytes = 0

    def put(self, data, media_type, **extra):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = os.path.join(self.blob_dir, digest[7:])
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.blob_count += 1
            self.blob_bytes += len(data)
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        desc.update(extra)
        return desc

    def tag(self, desc, name):
        entry = {k: desc[k] for k in ("mediaType", "digest", "size")}
        entry["annotations"] = {REF_NAME: name}
        self.entries.append(entry)

    def finish(self):
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}
        with open(os.path.join(self.root, "index.json"), "wb") as f:
            f.write(canonical(index))


def make_layer(name, size):
    """A gzip tar holding one file of `size` fresh random bytes: (gzip bytes, diff_id)."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("data")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
        t.addfile(d)
        info = tarfile.TarInfo("data/" + name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        t.addfile(info, io.BytesIO(os.urandom(size)))
    plain = tar_buf.getvalue()
    # Random bytes do not compress; level 1 keeps the generator fast and the layer a real gzip.
    return gzip.compress(plain, compresslevel=1, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def layer_size(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else lo


def make_image(layout, layers, os_name, arch, label):
    """Writes config + manifest for `layers` [(descriptor, diff_id)]; returns the manifest descriptor."""
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Labels": {"bench.image": label}},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "make-bundle.py layer %d" % i}
                    for i in range(len(layers))],
    }
    cdesc = layout.put(canonical(config), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc,
                "layers": [desc for desc, _ in layers]}
    return layout.put(canonical(manifest), OCI_MANIFEST)


class Signer:
    def __init__(self, private_key, tmp):
        self.key = private_key
        self.tmp = tmp

    def sign(self, payload):
        path = os.path.join(self.tmp, "payload")
        with open(path, "wb") as f:
            f.write(payload)
        der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key, path],
                             check=True, stdout=subprocess.PIPE).stdout
        return base64.b64encode(der).decode()


def sign_image(layout, signer, identity, digest):
    """Writes cosign's signature manifest for `digest`; returns its descriptor."""
    payload = canonical({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    })
    pdesc = layout.put(payload, SIMPLESIGNING,
                       annotations={SIGNATURE_ANNOTATION: signer.sign(payload)})
    # go-containerregistry's empty image + one static layer, as cosign pushes it.
    config = canonical({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [pdesc["digest"]]},
        "config": {},
    })
    cdesc = layout.put(config, OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": [pdesc]}
    return layout.put(canonical(manifest), OCI_MANIFEST)


def ensure_keys(private_key, public_key):
    if not os.path.exists(private_key):
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", private_key], check=True, stdout=subprocess.DEVNULL)
        os.chmod(private_key, 0o600)
    subprocess.run(["openssl", "ec", "-in", private_key, "-pubout", "-out", public_key],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="directory to create (must not exist)")
    p.add_argument("--images", type=int, default=200, help="images (indexes included), default 200")
    p.add_argument("--indexes", type=int, default=None,
                   help="how many images are linux/amd64+linux/arm64 indexes (default: 10%%, at least 1)")
    p.add_argument("--projects", type=int, default=None, help="projects (default: 4, fewer for few images)")
    p.add_argument("--repos", type=int, default=None, help="repositories per project (default: 5, fewer for few images)")
    p.add_argument("--min-layer", type=size_arg, default=size_arg("64K"), help="smallest layer (default 64K)")
    p.add_argument("--max-layer", type=size_arg, default=size_arg("2M"), help="largest layer (default 2M)")
    p.add_argument("--identity-registry", default="registry.example.com",
                   help="host in each signature's docker-reference (default registry.example.com)")
    p.add_argument("--identity-with-tag", action="store_true",
                   help="docker-reference HOST/projN/repoM:tag (skopeo's form) instead of cosign's HOST/projN/repoM")
    p.add_argument("--public-key", help="where the cosign public key PEM goes (default BUNDLE.pub)")
    p.add_argument("--private-key", help="EC P-256 private key PEM to sign with (created when missing; "
                   "default: a temporary one, deleted)")
    p.add_argument("--seed", type=int, default=None, help="seed for the shape (names, layer counts and "
                   "sizes); the bytes are always fresh")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    a = p.parse_args(argv)
    if a.images < 1:
        p.error("--images must be at least 1")
    if a.indexes is None:
        a.indexes = max(1, a.images // 10)
    if not 0 <= a.indexes <= a.images:
        p.error("--indexes must be between 0 and --images")
    if a.projects is None:
        a.projects = max(1, min(4, a.images // 10))
    if a.repos is None:
        a.repos = max(1, min(5, -(-a.images // a.projects)))
    if a.projects < 1 or a.repos < 1:
        p.error("--projects and --repos must be at least 1")
    if a.min_layer > a.max_layer:
        p.error("--min-layer is larger than --max-layer")
    host = a.identity_registry
    if not host or "/" in host or any(c.isspace() for c in host):
        p.error("--identity-registry takes a host[:port], e.g. harbor.example.com")
    if os.path.lexists(a.bundle):
        p.error("%s exists; give a new directory" % a.bundle)
    return a


def main(argv):
    a = parse_args(argv)
    rng = random.Random(a.seed)
    say = (lambda *_: None) if a.quiet else (lambda m: print("[make-bundle] " + m, file=sys.stderr))
    public_key = a.public_key or a.bundle.rstrip("/") + ".pub"
    tmp = tempfile.mkdtemp(prefix="make-bundle.")
    try:
        private_key = a.private_key or os.path.join(tmp, "cosign.key")
        ensure_keys(private_key, public_key)
        signer = Signer(private_key, tmp)
        layout = Layout(a.bundle)

        # Shared base layers, per platform (an arm64 image does not share amd64's bytes).
        bases = {arch: [layout_layer(layout, "base-%s-%d.bin" % (arch, i), rng, a) for i in range(BASE_LAYERS)]
                 for _, arch in PLATFORMS}
        index_at = set(rng.sample(range(a.images), a.indexes))
        refs = 0
        for i in range(a.images):
            project, repo, tag = i % a.projects, (i // a.projects) % a.repos, "v%d" % (i // (a.projects * a.repos) + 1)
            repo_name = "proj%d/repo%d" % (project + 1, repo + 1)
            name = "%s:%s" % (repo_name, tag)
            platforms = PLATFORMS if i in index_at else PLATFORMS[:1]
            manifests = []
            n_base = rng.choice((2, 3))
            n_own = rng.randint(max(1, 3 - n_base), 5 - n_base)
            for os_name, arch in platforms:
                own = [layout_layer(layout, "img%d-%s-%d.bin" % (i, arch, k), rng, a) for k in range(n_own)]
                mdesc = make_image(layout, bases[arch][:n_base] + own, os_name, arch, name)
                manifests.append(dict(mdesc, platform={"architecture": arch, "os": os_name}))
            if len(manifests) == 1:
                top = manifests[0]
                del top["platform"]
            else:
                top = layout.put(canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
                                 OCI_INDEX)
            layout.tag(top, name)
            identity = "%s/%s" % (a.identity_registry, name if a.identity_with_tag else repo_name)
            sig = sign_image(layout, signer, identity, top["digest"])
            layout.tag(sig, "%s:sha256-%s.sig" % (repo_name, top["digest"][7:]))
            refs += 2
            if (i + 1) % 50 == 0 or i + 1 == a.images:
                say("%d/%d images" % (i + 1, a.images))
        layout.finish()
    except BaseException:
        shutil.rmtree(a.bundle, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    policy = write_policy(a.bundle.rstrip("/") + ".policy.json", public_key, a.identity_registry)
    print(json.dumps({"bundle": a.bundle, "public_key": public_key, "policy": policy, "identity_registry": a.identity_registry,
                      "images": a.images, "indexes": a.indexes, "refs": refs,
                      "blobs": layout.blob_count, "bytes": layout.blob_bytes}))
    return 0


def write_policy(path, public_key, host):
    """A containers policy.json accepting this bundle's signatures for images under `host`."""
    policy = {
        "default": [{"type": "reject"}],
        "transports": {"docker": {host: [{
            "type": "sigstoreSigned",
            "keyPath": os.path.abspath(public_key),
            "signedIdentity": {"type": "matchRepository"},
        }]}},
    }
    with open(path, "w") as f:
        json.dump(policy, f, indent=2)
        f.write("\n")
    return path


def layout_layer(layout, name, rng, a):
    data, diff_id = make_layer(name, layer_size(rng, a.min_layer, a.max_layer))
    return layout.put(data, OCI_LAYER_GZIP), diff_id


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
