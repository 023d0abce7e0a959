#!/usr/bin/env python3
"""Check that a registry holds a bundle exactly: every ref at the bundle's digest.

For every `project/repo:tag` ref name in the bundle's index.json (signature refs included), the
registry must answer HEAD /v2/<repo>/manifests/<tag> with the bundle's digest
(Docker-Content-Digest) and size, and hold in <repo> every manifest below it (the platform
manifests of an index) and every blob (configs, layers, signature payloads) with the bundle's
digest and size. The expectations come from the bundle's files, never from the registry, so a
load that pushed something else (a re-encoded manifest, a recompressed layer) fails the check.

Usage: check-registry.py BUNDLE HOST:PORT [--prefix PATH] [--workers N] [--scheme http|https]
  --prefix PATH   the refs were loaded under HOST:PORT/PATH/ (load's REGISTRY/PREFIX form)
Plain HTTP by default (the benchmark's local registry, no auth). Exit 1 with the first failures
listed when anything differs; otherwise one line: how many refs and checks passed.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

REF_NAME = "org.opencontainers.image.ref.name"
INDEXES = ("application/vnd.oci.image.index.v1+json",
           "application/vnd.docker.distribution.manifest.list.v2+json")
ACCEPT = ", ".join(INDEXES + ("application/vnd.oci.image.manifest.v1+json",
                              "application/vnd.docker.distribution.manifest.v2+json"))
MAX_MANIFEST = 4 << 20


def plan(root):
    """[(path below /v2/, want digest or None, want size)] for every ref of the bundle."""
    def local(digest):
        with open(os.path.join(root, "blobs", *digest.split(":", 1)), "rb") as f:
            return f.read(MAX_MANIFEST + 1)

    checks, seen = [], set()

    def manifest(repo, desc):
        checks.append(("%s/manifests/%s" % (repo, desc["digest"]), desc["digest"], desc["size"]))
        doc = json.loads(local(desc["digest"]))
        if doc.get("mediaType", desc.get("mediaType")) in INDEXES:
            for child in doc["manifests"]:
                manifest(repo, child)
            return
        for blob in [doc["config"]] + doc.get("layers", []):
            if (repo, blob["digest"]) not in seen:
                seen.add((repo, blob["digest"]))
                checks.append(("%s/blobs/%s" % (repo, blob["digest"]), None, blob["size"]))

    with open(os.path.join(root, "index.json")) as f:
        idx = json.load(f)
    refs = 0
    for m in idx["manifests"]:
        name = (m.get("annotations") or {}).get(REF_NAME)
        if not name or ":" not in name:
            continue
        repo, tag = name.rsplit(":", 1)
        checks.append(("%s/manifests/%s" % (repo, tag), m["digest"], m["size"]))
        manifest(repo, m)
        refs += 1
    return refs, checks


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="the OCI layout the registry was loaded from")
    p.add_argument("registry", help="HOST:PORT")
    p.add_argument("--prefix", default="", help="the refs are under HOST:PORT/PREFIX/")
    p.add_argument("--workers", type=int, default=8, help="HEAD requests in flight (default 8)")
    p.add_argument("--scheme", choices=("http", "https"), default="http", help="default http")
    a = p.parse_args(argv)
    prefix = a.prefix.strip("/") + "/" if a.prefix.strip("/") else ""
    base = "%s://%s/v2/%s" % (a.scheme, a.registry, prefix)
    refs, checks = plan(a.bundle)
    if refs == 0:
        sys.exit("%s names no project/repo:tag ref" % a.bundle)

    def check(c):
        path, digest, size = c
        req = urllib.request.Request(base + path, method="HEAD", headers={"Accept": ACCEPT})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                h = r.headers
        except urllib.error.HTTPError as e:
            return "%s: HTTP %d" % (path, e.code)
        except OSError as e:
            return "%s: %s" % (path, e)
        if digest is not None and h.get("Docker-Content-Digest") != digest:
            return "%s: Docker-Content-Digest %s, the bundle's is %s" % (
                path, h.get("Docker-Content-Digest"), digest)
        length = h.get("Content-Length")
        if length is None or int(length) != size:
            return "%s: %s bytes, the bundle's are %d" % (path, length, size)
        return None

    with ThreadPoolExecutor(max(1, a.workers)) as pool:
        bad = [b for b in pool.map(check, checks) if b]
    if bad:
        print("%d of %d checks failed, e.g.:\n  %s" % (len(bad), len(checks), "\n  ".join(bad[:10])),
              file=sys.stderr)
        return 1
    print("%d refs, %d manifest/blob checks: all as in the bundle" % (refs, len(checks)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
