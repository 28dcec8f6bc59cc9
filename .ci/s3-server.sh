# shellcheck shell=bash
# Starts a throwaway S3-compatible server (s3s-fs 0.14.1, which checks SigV4
# signatures and POST policies) for the storage tests. Meant to be sourced:
#
#   source .ci/s3-server.sh      # installs once, starts, exports:
#     KYC_TEST_S3_ENDPOINT   http://127.0.0.1:PORT
#     KYC_TEST_S3_ACCESS_KEY / KYC_TEST_S3_SECRET_KEY   random per run
#   trap stop_s3_server EXIT     # stops it and removes its data dir
#
# s3s-fs is installed with `cargo install` into $KYC_TOOLS_DIR (default
# ~/.cache/kyc-api-tools), outside the repository, the first time only
# (about 5 minutes on 2 cores); a s3s-fs 0.14.1 already on PATH is reused.
# Newer s3s-fs versions need a newer rustc than the project's.

S3S_FS_VERSION=0.14.1
_s3_pid=""
_s3_dir=""

_s3_log() { echo "s3-server: $*" >&2; }

_s3_find_binary() {
  local tools="${KYC_TOOLS_DIR:-$HOME/.cache/kyc-api-tools}"
  local candidate
  for candidate in "$tools/bin/s3s-fs" "$(command -v s3s-fs 2>/dev/null || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
      [ "$("$candidate" --version 2>/dev/null)" = "s3s-fs $S3S_FS_VERSION" ]; then
      echo "$candidate"
      return 0
    fi
  done
  _s3_log "installing s3s-fs $S3S_FS_VERSION into $tools (once; takes a few minutes)"
  cargo install s3s-fs --version "$S3S_FS_VERSION" --locked --features binary --root "$tools" >&2 ||
    return 1
  echo "$tools/bin/s3s-fs"
}

stop_s3_server() {
  if [ -n "$_s3_pid" ]; then
    kill "$_s3_pid" 2>/dev/null || true
    wait "$_s3_pid" 2>/dev/null || true
    _s3_pid=""
  fi
  if [ -n "$_s3_dir" ]; then
    rm -rf "$_s3_dir"
    _s3_dir=""
  fi
}

_s3_start() {
  local bin port="" i
  bin="$(_s3_find_binary)" || { _s3_log "could not install s3s-fs"; return 1; }
  _s3_dir="$(mktemp -d "${TMPDIR:-/tmp}/kyc-s3.XXXXXX")" || return 1
  mkdir -p "$_s3_dir/data"
  local access secret
  access="test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"

  # Port 0: the kernel picks a free port, s3s-fs logs which (no race).
  RUST_LOG=s3s_fs=info NO_COLOR=1 "$bin" --host 127.0.0.1 --port 0 \
    --access-key "$access" --secret-key "$secret" "$_s3_dir/data" \
    >"$_s3_dir/server.log" 2>&1 &
  _s3_pid=$!

  for i in $(seq 1 100); do
    if ! kill -0 "$_s3_pid" 2>/dev/null; then
      _s3_log "s3s-fs exited early:"; cat "$_s3_dir/server.log" >&2
      _s3_pid=""; stop_s3_server; return 1
    fi
    port="$(sed -n 's/.*server is running at http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$_s3_dir/server.log" | head -n1)"
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    _s3_log "s3s-fs did not report its port in 10 s:"; cat "$_s3_dir/server.log" >&2
    stop_s3_server; return 1
  fi

  # Answers HTTP? (An unsigned request gets an S3 error status, which is fine.)
  for i in $(seq 1 100); do
    if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/"; then
      export KYC_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
      export KYC_TEST_S3_ACCESS_KEY="$access"
      export KYC_TEST_S3_SECRET_KEY="$secret"
      _s3_log "s3s-fs $S3S_FS_VERSION listening on $KYC_TEST_S3_ENDPOINT (pid $_s3_pid)"
      return 0
    fi
    sleep 0.1
  done
  _s3_log "s3s-fs on port $port does not answer:"; cat "$_s3_dir/server.log" >&2
  stop_s3_server; return 1
}

_s3_start
