#!/usr/bin/env bash
# End-to-end demo of the operator runbook (README: "Runbook steps and the commands that replace
# them") with gdcloud-kit, on real local servers: a real kube-apiserver + etcd (holding the
# bucket key Secret, the `dnssuffix` ConfigMap and
# the HarborCluster `harbor` whose .spec.externalURL is the local registry), Garage (one node) holding the image
# tarball `g/oracle_db.tar` in bucket BUCKET, and a Distribution registry standing in for Harbor with
# Docker token auth, as Harbor has (its tokens come from the tests' token server, run as
# examples/token-server.rs). Every step is printed as the operator would type it; no secret is
# printed anywhere.
#
#   scripts/runbook-demo.sh
#
# Installs what it needs (Debian packages; kube-apiserver and Garage via scripts/testenv/, cached),
# builds the workspace and the token server (`cargo build --release --locked --workspace`, then
# `--example token-server`) unless GDCLOUD_BIN_DIR names a directory holding the binaries (and the
# token server in its examples/, as `cargo build --examples` leaves it), runs everything in a temp dir
# (own HOME, gdcloud and Docker configuration) and stops every server on exit.
# Environment: GDCLOUD_BIN_DIR (prebuilt binaries), DEMO_ACCESS_KEY / DEMO_SECRET_KEY (the bucket key),
# DEMO_REGISTRY_PASSWORD (the registry login), DEMO_KEEP=1 (keep the temp dir), DEMO_REPORT_DIR (on
# exit, copy there the registry config, its auth challenge and the token server's line and request
# log: how tests/runbook_demo.rs checks that token auth was used).
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
T0=$SECONDS

note() { printf '# %s\n' "$*"; }
info() { printf '[runbook-demo] %s\n' "$*" >&2; }
die() { printf '[runbook-demo] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; printf "[runbook-demo] ERROR: failed (exit %s) at line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

# --- Prerequisites -------------------------------------------------------------------------------
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
need etcd etcd-server
need kubectl kubernetes-client
need docker-registry docker-registry
need skopeo skopeo
need umoci umoci
need openssl openssl
need curl curl
need python3 python3
if [ ${#need_pkgs[@]} -gt 0 ]; then
  info "installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_pkgs[@]}" >&2 || die "apt-get install ${need_pkgs[*]} failed"
fi
KUBE_APISERVER="$(bash "$REPO/scripts/testenv/kube-apiserver.sh" | tail -n1)" ||
  die "scripts/testenv/kube-apiserver.sh failed"
GARAGE="$(bash "$REPO/scripts/testenv/garage.sh" | tail -n1)" || die "scripts/testenv/garage.sh failed"
[ -x "$KUBE_APISERVER" ] || die "no kube-apiserver binary ($KUBE_APISERVER)"
[ -x "$GARAGE" ] || die "no garage binary ($GARAGE)"

if [ -n "${GDCLOUD_BIN_DIR:-}" ]; then
  BIN_DIR="$(cd "$GDCLOUD_BIN_DIR" && pwd)" || die "GDCLOUD_BIN_DIR=$GDCLOUD_BIN_DIR is not a directory"
else
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) or set GDCLOUD_BIN_DIR"
  info "cargo build --release --locked --workspace, then --example token-server"
  (cd "$REPO" && cargo build --release --locked --workspace >&2 &&
    cargo build --release --locked --example token-server >&2) || die "cargo build failed"
  # where cargo put them (CARGO_TARGET_DIR or build.target-dir, else target/)
  TARGET_DIR="$(cd "$REPO" && cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')" ||
    die "cargo metadata failed"
  BIN_DIR="$TARGET_DIR/release"
fi
for b in gdcloud-auth gdcloud-storage gdcloud-artifacts docker-credential-gdcloud; do
  [ -x "$BIN_DIR/$b" ] || die "$b is not in $BIN_DIR (build the workspace or fix GDCLOUD_BIN_DIR)"
done
TOKEN_SERVER="$BIN_DIR/examples/token-server"
[ -x "$TOKEN_SERVER" ] ||
  die "token-server is not in $BIN_DIR/examples (cargo build --examples, or fix GDCLOUD_BIN_DIR)"
REPORT_DIR="${DEMO_REPORT_DIR:-}"
[ -z "$REPORT_DIR" ] || REPORT_DIR="$(mkdir -p "$REPORT_DIR" && cd "$REPORT_DIR" && pwd)" ||
  die "cannot create DEMO_REPORT_DIR=$DEMO_REPORT_DIR"

# Secrets: from the environment (the test passes its own) or fresh random ones.
rand() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
# Garage's key format: GK + 24 hex digits, and a 64-digit hex secret.
ACCESS_KEY="${DEMO_ACCESS_KEY:-GK$(rand)}"
SECRET_KEY="${DEMO_SECRET_KEY:-$(rand)$(rand)$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}"
REG_USER="demo"
REG_PASSWORD="${DEMO_REGISTRY_PASSWORD:-demo-pass-$(rand)}"

# --- A private, hermetic environment ---------------------------------------------------------------
# This machine (and many CI images) export CA bundles, proxies, cloud and Docker settings globally:
# none of them may reach the demo. (The build above ran with the caller's environment.)
for v in $(compgen -e); do
  case "$v" in
    AWS_* | SSL_CERT_* | *_CA_BUNDLE | *CA_CERTS* | *SSL_ROOTS* | *_CAINFO | PIP_CERT | \
    ETCD_* | REGISTRY_* | DOCKER_* | GDCLOUD_* | KUBECONFIG | DBUS_SESSION_BUS_ADDRESS | XDG_* | \
    http_proxy | https_proxy | all_proxy | HTTP_PROXY | HTTPS_PROXY | ALL_PROXY | no_proxy | NO_PROXY)
      unset "$v" ;;
  esac
done
DEMO="$(mktemp -d "${TMPDIR:-/tmp}/gdcloud-runbook-demo.XXXXXX")"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$REPORT_DIR" ]; then
    for f in registry.yml registry-challenge.txt token-server.json token-server.log; do
      [ ! -f "$S/$f" ] || cp "$S/$f" "$REPORT_DIR/" || true
    done
  fi
  if [ "${DEMO_KEEP:-}" = 1 ]; then info "kept $DEMO"; else rm -rf "$DEMO"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
S="$DEMO/servers"
mkdir -p "$S" "$DEMO/home" "$DEMO/run"
chmod 700 "$DEMO/run"
export HOME="$DEMO/home"
export GDCLOUD_CONFIG="$HOME/.config/gdcloud"
export DOCKER_CONFIG="$HOME/.docker"
export XDG_RUNTIME_DIR="$DEMO/run"
export GDCLOUD_AUTH_CREDENTIAL_STORE=file # a headless box has no keyring: the 0600 file store
export PATH="$BIN_DIR:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start NAME CMD…: runs CMD in the background, its output in $S/NAME.log.
start() { local n=$1; shift; "$@" </dev/null >"$S/$n.log" 2>&1 & PIDS+=($!); }
# wait_for NAME SECONDS CMD…: polls CMD until it succeeds; dies with NAME's log otherwise.
wait_for() {
  local n=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      tail -n 30 "$S/$n.log" >&2 || true
      die "$n did not become ready within ${secs}s (log above)"
    fi
    sleep 0.2
  done
}
ossl() { openssl "$@" >/dev/null 2>"$S/openssl.err" || { cat "$S/openssl.err" >&2; die "openssl $1 failed"; }; }

# --- etcd + kube-apiserver (as tests/util/kube.rs) -----------------------------------------------
info "starting etcd and kube-apiserver"
ossl req -x509 -nodes -days 3 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj /CN=demo-kube-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$S/ca.key" -out "$S/ca.crt"
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" \
  "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
  >"$S/apiserver.ext"
ossl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj /CN=apiserver \
  -keyout "$S/apiserver.key" -out "$S/apiserver.csr"
ossl x509 -req -days 3 -set_serial "$((RANDOM * 32768 + RANDOM))" -in "$S/apiserver.csr" \
  -CA "$S/ca.crt" -CAkey "$S/ca.key" -extfile "$S/apiserver.ext" -out "$S/apiserver.crt"
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$S/sa.key"
ossl pkey -pubout -in "$S/sa.key" -out "$S/sa.pub"
ADMIN_TOKEN="admin-$(rand)"
(umask 077 && printf '%s,admin,1000,"system:masters"\n' "$ADMIN_TOKEN" >"$S/tokens.csv")

ETCD_PORT=$(free_port)
ETCD_PEER=$(free_port)
ETCD_URL="http://127.0.0.1:$ETCD_PORT"
start etcd etcd --name demo --logger zap --log-outputs stderr --data-dir "$S/etcd" \
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" --heartbeat-interval 10 --election-timeout 100
etcd_healthy() { curl -sf --max-time 2 "$ETCD_URL/health" | grep -q '"health":"true"'; }
wait_for etcd 40 etcd_healthy

KUBE_PORT=$(free_port)
KUBE_SERVER="https://127.0.0.1:$KUBE_PORT"
mkdir -p "$S/kube-certs"
start kube-apiserver "$KUBE_APISERVER" --etcd-servers="$ETCD_URL" --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 --insecure-port=0 --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range=10.96.0.0/24 --profiling=false --secure-port="$KUBE_PORT" \
  --cert-dir="$S/kube-certs" --tls-cert-file="$S/apiserver.crt" --tls-private-key-file="$S/apiserver.key" \
  --token-auth-file="$S/tokens.csv" --service-account-key-file="$S/sa.pub" \
  --service-account-signing-key-file="$S/sa.key"

# The operator's admin kubeconfig (what `gdcloud clusters get-credentials` would give).
KUBECFG="$HOME/org-admin.kubeconfig"
(umask 077 && cat >"$KUBECFG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: demo-org
  cluster:
    server: "$KUBE_SERVER"
    certificate-authority-data: "$(base64 -w0 <"$S/ca.crt")"
users:
- name: admin
  user:
    token: "$ADMIN_TOKEN"
contexts:
- name: demo-org-admin
  context:
    cluster: demo-org
    user: admin
    namespace: default
current-context: demo-org-admin
EOF
)
kc() { kubectl --kubeconfig "$KUBECFG" "$@"; }
kube_ready() { [ "$(kc get --raw=/readyz 2>/dev/null)" = ok ]; }
wait_for kube-apiserver 90 kube_ready

# --- Garage (one node) with the image tarball in the bucket -------------------------------------------
# The runbook's BUCKET placeholder: S3 bucket names are lower case (Garage refuses `BUCKET`).
BUCKET="${DEMO_BUCKET:-oracle-images}"
info "building the image tarball (umoci + skopeo)"
B="$S/image"
# unpack + repack, not `umoci insert`: umoci 0.4.7's insert writes a layer without the tar trailer,
# which strict readers (ours included) rightly refuse as truncated.
umoci init --layout "$B/layout" >/dev/null
umoci new --image "$B/layout:19c" >/dev/null
umoci unpack --image "$B/layout:19c" "$B/bundle" >/dev/null
mkdir -p "$B/bundle/rootfs/opt/oracle"
printf 'Oracle Database 19c demo image (gdcloud-kit runbook demo)\n' >"$B/bundle/rootfs/opt/oracle/VERSION"
umoci repack --image "$B/layout:19c" "$B/bundle" >/dev/null
umoci config --image "$B/layout:19c" --config.cmd /bin/sh --os linux --architecture amd64 >/dev/null
skopeo --insecure-policy copy -q "oci:$B/layout:19c" \
  "docker-archive:$B/oracle_db.tar:proj/oracle_db:19c" >/dev/null ||
  die "skopeo copy to docker-archive failed"

info "starting Garage and the registry"
S3_PORT=$(free_port)
S3_RPC_PORT=$(free_port)
S3_URL="http://127.0.0.1:$S3_PORT"
mkdir -p "$S/s3/meta" "$S/s3/data"
printf '%s\n' "metadata_dir = \"$S/s3/meta\"" "data_dir = \"$S/s3/data\"" 'db_engine = "sqlite"' \
  'replication_factor = 1' "rpc_bind_addr = \"127.0.0.1:$S3_RPC_PORT\"" \
  "rpc_public_addr = \"127.0.0.1:$S3_RPC_PORT\"" "rpc_secret = \"$(rand)$(rand)$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')\"" \
  '' '[s3_api]' "api_bind_addr = \"127.0.0.1:$S3_PORT\"" 's3_region = "us-east-1"' >"$S/s3/garage.toml"
# The key and the bucket are made at start (--default-bucket); the key never reaches argv.
GARAGE_DEFAULT_ACCESS_KEY="$ACCESS_KEY" GARAGE_DEFAULT_SECRET_KEY="$SECRET_KEY" GARAGE_DEFAULT_BUCKET="$BUCKET" \
  RUST_LOG=warn NO_COLOR=1 start garage "$GARAGE" -c "$S/s3/garage.toml" server --single-node --default-bucket
# curl signs with SigV4; its --user reads the key pair from a 0600 config file, not from argv.
( umask 077; printf 'user = "%s:%s"\n' "$ACCESS_KEY" "$SECRET_KEY" >"$S/s3/curl.conf" )
s3_curl() { curl -sS -f --max-time 60 -K "$S/s3/curl.conf" --aws-sigv4 "aws:amz:us-east-1:s3" \
  -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
s3_up() { s3_curl -o /dev/null "$S3_URL/$BUCKET?list-type=2&max-keys=1" 2>/dev/null; }
wait_for garage 30 s3_up
s3_curl -o /dev/null -T "$B/oracle_db.tar" "$S3_URL/$BUCKET/g/oracle_db.tar" ||
  die "could not put g/oracle_db.tar into the bucket"

# --- Distribution registry standing in for Harbor (token auth) -----------------------------------
# The token server (as `start`, but the password goes on stdin, never in argv) writes its signing key
# and certificate into $S/token and prints one line of JSON: realm, service, issuer, rootcertbundle.
mkdir -p "$S/token"
"$TOKEN_SERVER" --dir "$S/token" --username "$REG_USER" <<<"$REG_PASSWORD" \
  >"$S/token-server.json" 2>"$S/token-server.log" & PIDS+=($!)
TOKEN_PID=$!
token_server_up() {
  grep -q '}$' "$S/token-server.json" 2>/dev/null && return 0
  kill -0 "$TOKEN_PID" 2>/dev/null || { cat "$S/token-server.log" >&2; die "token-server exited (log above)"; }
  return 1
}
end=$((SECONDS + 30))
until token_server_up; do
  [ $SECONDS -lt $end ] || { cat "$S/token-server.log" >&2; die "token-server printed nothing in 30 s"; }
  sleep 0.1
done
# Line 1: the realm; line 2: the registry's `token:` entry (JSON strings are YAML scalars).
mapfile -t TOKEN < <(python3 -c '
import json, sys
t = json.loads(sys.stdin.readline())
print(t["realm"])
print("  token: {%s}" % ", ".join("%s: %s" % (k, json.dumps(t[k]))
                                 for k in ("realm", "service", "issuer", "rootcertbundle")))
' <"$S/token-server.json")
[ ${#TOKEN[@]} = 2 ] || die "unexpected token-server output: $(cat "$S/token-server.json")"
TOKEN_REALM="${TOKEN[0]}"
REG_PORT=$(free_port)
REG_HOST="127.0.0.1:$REG_PORT"
cat >"$S/registry.yml" <<EOF
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: "$S/registry"}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http:
  addr: "$REG_HOST"
  secret: "demo-$(rand)"
auth:
${TOKEN[1]}
EOF
start registry docker-registry serve "$S/registry.yml"
reg_up() { [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$REG_HOST/v2/")" = 401 ]; }
wait_for registry 30 reg_up
# Clients must be sent to the token server, as Harbor sends them to its own.
curl -s --max-time 5 -o /dev/null -D - "http://$REG_HOST/v2/" | tr -d '\r' |
  grep -i '^www-authenticate:' >"$S/registry-challenge.txt" || true
grep -qF "Bearer realm=\"$TOKEN_REALM\"" "$S/registry-challenge.txt" ||
  die "the registry does not send clients to the token server: $(cat "$S/registry-challenge.txt")"
info "registry: Distribution with token auth (realm $TOKEN_REALM)"

# --- The cluster's GDC objects ---------------------------------------------------------------------
info "creating the bucket key Secret, the dnssuffix ConfigMap and the HarborCluster"
kc apply -f - >/dev/null <<EOF || die "kubectl apply (fixtures) failed"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: object-storage-access-keys}}
- {apiVersion: v1, kind: Namespace, metadata: {name: gpc-system}}
- {apiVersion: v1, kind: Namespace, metadata: {name: harbor-system}}
- apiVersion: v1
  kind: Secret
  type: Opaque
  metadata:
    name: object-storage-key-std-user-1
    namespace: object-storage-access-keys
    labels: {object.gdc.goog/storage-class: standard}
    annotations: {object.gdc.goog/subject: "user:std-user-1"}
  data:
    access-key-id: $(printf '%s' "$ACCESS_KEY" | base64 -w0)
    secret-access-key: $(printf '%s' "$SECRET_KEY" | base64 -w0)
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: dnssuffix, namespace: gpc-system}
  data: {dnsSuffix: org.example.test}
- apiVersion: apiextensions.k8s.io/v1
  kind: CustomResourceDefinition
  metadata: {name: harborclusters.goharbor.io}
  spec:
    group: goharbor.io
    scope: Namespaced
    names: {kind: HarborCluster, listKind: HarborClusterList, plural: harborclusters, singular: harborcluster}
    versions:
    - name: v1beta1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
EOF
kc wait --for=condition=established --timeout=30s crd/harborclusters.goharbor.io >/dev/null ||
  die "the HarborCluster CRD was not established"
harbor_cluster() {
  kc apply -f - <<EOF
apiVersion: goharbor.io/v1beta1
kind: HarborCluster
metadata: {name: harbor, namespace: harbor-system}
spec: {externalURL: "http://$REG_HOST"}
EOF
}
wait_for kubectl 30 harbor_cluster

# --- The runbook ----------------------------------------------------------------------------------
WORK="$HOME"
cd "$WORK"
# show: prints a command as the user types it (temp paths shortened to ~), no secrets involved.
show() { local l="$*"; printf '\n$ %s\n' "${l//$HOME/\~}"; }
# run CMD…: show it, run it, die with the step's name on failure.
STEP=""
run() { show "$*"; "$@" || die "step '$STEP' failed: $*"; }
step() { STEP="$1"; printf '\n==== %s ====\n' "$1"; }
K="$KUBECFG"

printf '\n# gdcloud-kit runbook demo: kube-apiserver %s, Garage %s, registry %s (Harbor stand-in, token auth)\n' \
  "$KUBE_SERVER" "$S3_URL" "$REG_HOST"
printf '# every server runs on loopback in %s; no secret is shown below.\n' "${DEMO}"

step "1. Registry login: configure Docker for the cluster's registry"
note "the registry is .spec.externalURL of HarborCluster harbor (harbor-system), read from the cluster"
run gdcloud-auth configure-docker --kubeconfig "$K"
if command -v docker >/dev/null; then
  note "docker login stores the login in docker-credential-gdcloud (the docker CLI needs no daemon for this)"
  show "docker login --username $REG_USER --password-stdin $REG_HOST   # password on stdin, not shown"
  # (its stderr minus the info line about first trying https on a plain-HTTP loopback registry)
  printf '%s\n' "$REG_PASSWORD" | docker login --username "$REG_USER" --password-stdin "$REG_HOST" \
    2>"$S/docker-login.err" || { cat "$S/docker-login.err" >&2; die "step '$STEP' failed: docker login"; }
  grep -v 'level=info' "$S/docker-login.err" >&2 || true
else
  note "no docker CLI: store the login in the helper the way docker login does"
  show "echo '{\"ServerURL\":\"$REG_HOST\",\"Username\":\"$REG_USER\",\"Secret\":\"…\"}' | docker-credential-gdcloud store"
  printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$REG_HOST" "$REG_USER" "$REG_PASSWORD" |
    docker-credential-gdcloud store || die "step '$STEP' failed: docker-credential-gdcloud store"
fi
run docker-credential-gdcloud list
echo

step "2. Storage: bucket key and endpoint from the cluster"
note "the dnssuffix ConfigMap would give https://objectstorage.org.example.test, which is not local:"
note "--endpoint keeps the demo on loopback (drop it on a real org)"
run gdcloud-storage configure --kubeconfig "$K" --endpoint "$S3_URL"

step "3. Download the image tarball from the bucket"
run gdcloud-storage cp "s3://$BUCKET/g/oracle_db.tar" .
run ls -l oracle_db.tar

step "4. Push it to the registry (no Docker daemon)"
note "a reference without a host goes to the cluster's registry"
run gdcloud-artifacts push oracle_db.tar proj/oracle_db:19c --kubeconfig "$K"

step "5. The newest tag"
show "TAG=\$(gdcloud-artifacts list-versions proj/oracle_db --latest --kubeconfig $K)"
TAG="$(gdcloud-artifacts list-versions proj/oracle_db --latest --kubeconfig "$K")" ||
  die "step '$STEP' failed: gdcloud-artifacts list-versions"
[ -n "$TAG" ] || die "step '$STEP': list-versions printed no tag"
show "echo \$TAG"
printf '%s\n' "$TAG"

step "6. Pull the image"
run gdcloud-artifacts pull --single-manifest-repo "proj/oracle_db:$TAG" "oracle_db-$TAG" --kubeconfig "$K"

step "7. Extract its content"
run gdcloud-artifacts extract "oracle_db-$TAG" "oracle_db-$TAG-extracted"
f="$(cd "oracle_db-$TAG-extracted" && find . -path '*opt/oracle/VERSION' -type f | head -n1)"
[ -n "$f" ] || die "step '$STEP': opt/oracle/VERSION is not in oracle_db-$TAG-extracted"
run cat "oracle_db-$TAG-extracted/${f#./}"

step "8. Load a signed bundle into the registry, checking every signature first"
note "a bundle as it reaches the air-gapped side: one OCI layout naming each image PROJECT/REPO:TAG,"
note "its cosign signature beside it as PROJECT/REPO:sha256-<digest>.sig (3 images, one multi-platform)"
show "python3 scripts/bench/make-bundle.py --images 3 --indexes 1 bundle   # writes bundle.pub too"
python3 "$REPO/scripts/bench/make-bundle.py" --images 3 --indexes 1 --projects 1 \
  --identity-registry "$REG_HOST" -q bundle >/dev/null || die "step '$STEP' failed: make-bundle.py"
run gdcloud-artifacts tree bundle
run gdcloud-artifacts load bundle --verify --key bundle.pub --kubeconfig "$K"
note "a second run finds everything there at the same digest"
run gdcloud-artifacts load bundle --kubeconfig "$K"

step "9. Pull one of its images and extract it"
show "IMAGE=\$(gdcloud-artifacts tree bundle --format 'value(repository,tag)' | grep -v '\.sig' | head -n1 | tr '\t' :)"
IMAGE="$(gdcloud-artifacts tree bundle --format 'value(repository,tag)' | grep -v '\.sig' | head -n1 | tr '\t' :)"
[ -n "$IMAGE" ] || die "step '$STEP': tree listed no image"
note "the whole image (an index is signed as the index), its signature checked before anything is written"
run gdcloud-artifacts pull --verify --key bundle.pub "$IMAGE" loaded-image --kubeconfig "$K"
run gdcloud-artifacts extract --platform linux/amd64 loaded-image loaded-image-extracted
n="$(find loaded-image-extracted -type f | wc -l)"
[ "$n" -gt 0 ] || die "step '$STEP': nothing was extracted from $IMAGE"
printf '%s files extracted from %s\n' "$n" "$IMAGE"

# --- Summary --------------------------------------------------------------------------------------
printf '\n==== Summary ====\n'
printf '%s\n' \
  "registry from the cluster : $REG_HOST (HarborCluster harbor/.spec.externalURL)" \
  "bucket key from cluster   : object-storage-key-std-user-1 (secret not shown)" \
  "downloaded                : s3://$BUCKET/g/oracle_db.tar ($(wc -c <oracle_db.tar) bytes)" \
  "pushed, newest tag        : $REG_HOST/proj/oracle_db:$TAG" \
  "pulled, extracted         : oracle_db-$TAG -> oracle_db-$TAG-extracted/${f#./}" \
  "signed bundle loaded      : 3 images verified with bundle.pub; $IMAGE pulled and extracted" \
  "run time                  : $((SECONDS - T0)) s"
printf 'runbook demo: OK\n'
