#!/usr/bin/env bash
# Plays the user's web browser against the real OpenID provider of tests/oidc/provider.mjs
# (oidc-provider's devInteractions pages), with curl and a cookie jar: it signs in (any login, any
# password), consents, and follows the provider's redirects. It is the one place that knows those
# pages' HTML; tests/util/oidc.rs runs it too.
#
#   browser.sh URL                 as $BROWSER: authorize, then GET the final redirect (the
#                                  product's loopback callback), delivering the code to it
#   browser.sh --print URL         authorize, print the final redirect URL, do not request it
#   browser.sh --device URI CODE   device flow: open URI, enter CODE, confirm, sign in, consent
#
# Environment: OIDC_TEST_USER (login, default alice), OIDC_TEST_CA (CA file for an HTTPS issuer).
set -euo pipefail

mode=deliver
case "${1:-}" in
  --print) mode=print; shift ;;
  --device) mode=device; shift ;;
esac
[ $# -ge 1 ] || { echo "usage: $0 [--print] URL | --device URI USER_CODE" >&2; exit 2; }
url=$1
user_code=${2:-}
user=${OIDC_TEST_USER:-alice}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jar=$work/cookies body=$work/body
: >"$jar"
curl_args=(-sS --max-time 20 -c "$jar" -b "$jar" -o "$body")
[ -z "${OIDC_TEST_CA:-}" ] || curl_args+=(--cacert "$OIDC_TEST_CA")

origin=$(printf '%s\n' "$url" | grep -oE '^https?://[^/]+')
trace=$work/trace
: >"$trace"
# On failure: the steps taken, the error, and the last page (quiet on success, as a browser is).
die() {
  { cat "$trace"; echo "browser.sh: $*"; echo "--- last page:"; cat "$body" 2>/dev/null || true; } >&2
  exit 1
}

# request METHOD URL [curl data args...]: sets $status and $location (absolute, or empty).
request() {
  local method=$1 target=$2; shift 2
  local out
  out=$(curl "${curl_args[@]}" -X "$method" -w '%{http_code} %{redirect_url}' "$@" "$target") \
    || die "curl $method $target failed"
  status=${out%% *}
  location=${out#* }
  echo "browser.sh: $method $target -> $status $location" >>"$trace"
}

# The first form's action and its hidden inputs as --data-urlencode arguments.
form_action() { { grep -oE 'action="[^"]*"' "$body" || true; } | head -n1 | sed -E 's/^action="(.*)"$/\1/; s/&amp;/\&/g'; }
hidden_fields() {
  { grep -oE '<input type="hidden" name="[^"]*" value="[^"]*"' "$body" || true; } \
    | sed -E 's/^.*name="([^"]*)" value="([^"]*)"$/\1=\2/; s/&amp;/\&/g' \
    | while IFS= read -r kv; do printf '%s\0' --data-urlencode "$kv"; done
}

method=GET
data=()
for _ in $(seq 1 20); do
  request "$method" "$url" "${data[@]}"
  method=GET data=()
  case $status in
    30[1237])
      [ -n "$location" ] || die "redirect without Location"
      if [[ $location != "$origin"/* ]]; then # left the provider: this is the client's redirect URI
        case $mode in
          print) printf '%s\n' "$location"; exit 0 ;;
          deliver) request GET "$location"; exit 0 ;;
          device) die "device flow redirected out of the provider to $location" ;;
        esac
      fi
      url=$location
      continue ;;
    200) ;;
    *) die "unexpected HTTP $status from $url" ;;
  esac
  action=$(form_action)
  mapfile -d '' fields < <(hidden_fields)
  if grep -q 'name="prompt" value="login"' "$body"; then # devInteractions sign-in page
    data=("${fields[@]}" --data-urlencode "login=$user" --data-urlencode "password=any")
  elif grep -q 'name="prompt" value="consent"' "$body"; then # devInteractions consent page
    data=("${fields[@]}")
  elif grep -q 'id="op.deviceInputForm"' "$body"; then # device flow: enter the user code
    [ -n "$user_code" ] || die "the provider asks for a user code but none was given"
    data=("${fields[@]}" --data-urlencode "user_code=$user_code")
  elif grep -q 'id="op.deviceConfirmForm"' "$body"; then # device flow: confirm the device (fields include confirm=yes)
    data=("${fields[@]}")
  elif grep -q '<title>Submitting Callback</title>' "$body"; then # auto-submitting form_post page
    data=("${fields[@]}")
  elif [ "$mode" = device ] && grep -q '<title>Sign-in Success</title>' "$body"; then
    exit 0
  else
    die "unrecognized page at $url"
  fi
  [ -n "$action" ] || die "page without a form action"
  method=POST url=$action
done
die "too many steps"
