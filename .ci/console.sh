#!/usr/bin/env bash
# The review console in a real headless Chromium (Debian's chromium and
# chromium-driver), driven through WebDriver by .ci/console_check.py
# against a fresh server. Screenshots of each page are kept under
# ${KYC_CI_ARTIFACTS:-target/ci-artifacts}/console.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
VENV="${KYC_CI_VENV:-$HOME/.cache/kyc-api-ci/venv}"
SELENIUM_VERSION=4.27.1
SHOTS="${KYC_CI_ARTIFACTS:-$REPO/target/ci-artifacts}/console"
log() { printf 'console: %s\n' "$*" >&2; }

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    log "installing chromium and chromium-driver"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
    log "installing selenium $SELENIUM_VERSION and requests into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION" requests
fi

cargo build --quiet --bin kyc-api
BIN="$REPO/target/debug/kyc-api"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kyc-console.XXXXXX")"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
API_KEY="kyc_console_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
DATABASE_URL="sqlite://$WORK/kyc.db"
mkdir -p "$WORK/files" "$SHOTS"
DATABASE_URL="$DATABASE_URL" KYC_BIND="127.0.0.1:$PORT" KYC_STORAGE="local:$WORK/files" \
    KYC_PUBLIC_URL="http://127.0.0.1:$PORT" KYC_BOOTSTRAP_API_KEY="$API_KEY" KYC_ENV=sandbox KYC_LOG=warn \
    "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$WORK/server.log" >&2; log "FAILED: the server did not start"; exit 1; }

KYC_CONSOLE_BASE_URL="http://127.0.0.1:$PORT" KYC_CONSOLE_API_KEY="$API_KEY" KYC_CONSOLE_BIN="$BIN" \
    KYC_CONSOLE_DATABASE_URL="$DATABASE_URL" KYC_CONSOLE_SCREENSHOTS="$SHOTS" \
    "$VENV/bin/python" .ci/console_check.py || {
    log "server log (last 50 lines):"
    tail -n 50 "$WORK/server.log" >&2
    exit 1
}
