#!/usr/bin/env bash
# Encryption-at-rest benchmark (issue 17): creates and gets with every
# identity's personal data sealed under its own data key, against the same
# without (the last commit before field encryption). Any change's cost can
# be measured the same way: BASELINE=<commit before it> (issue 18's audit
# record: BASELINE=ed6e7b1 OUT=bench/results/audit-<time>).
#
#   bash bench/encryption.sh                     # both backends
#   BACKENDS=sqlite DURATION=10 bash bench/encryption.sh
#
# Both binaries are built in one target dir (dependencies once). Per backend
# and binary, on a fresh database with a fresh release server:
#   1. create: wrk POSTs the reference person for DURATION seconds;
#   2. get: wrk GETs random identities among those the create made.
# Results go to bench/results/encryption-<time>/ and are printed as a table.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BACKENDS=${BACKENDS:-"sqlite postgres"}
BASELINE=${BASELINE:-07ed5bb}   # the last commit before field encryption
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-32}
PORT=${PORT:-18080}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=${PG_DB:-kyc_bench_encryption}
WORK=${WORK:-/tmp/kyc-bench-encryption}
TARGET=${BENCH_TARGET_DIR:-/work/bench-target}
OUT=${OUT:-$HERE/results/encryption-$(date -u +%Y%m%dT%H%M%SZ)}
API_KEY=kyc_bench_bootstrap_key_0123456789abcdef
KEYS="bench:$(printf 'b%.0s' {1..32} | base64)"
mkdir -p "$OUT" "$WORK"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

for tool in wrk sqlite3 psql; do
  command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk sqlite3 postgresql-client >/dev/null; break; }
done

build() { # COMMIT NAME: a release binary of COMMIT at $WORK/NAME
  local tree=$WORK/src-$2
  rm -rf "$tree"
  git -C "$REPO" worktree prune
  git -C "$REPO" worktree add -q --detach "$tree" "$1"
  (cd "$tree" && CARGO_TARGET_DIR=$TARGET nice -n 10 cargo build --release --quiet --bin kyc-api)
  cp "$TARGET/release/kyc-api" "$WORK/$2"
  git -C "$REPO" worktree remove --force "$tree"
}
if [[ -z ${PREBUILT:-} ]]; then
  log "building $BASELINE (without) and HEAD (with), release"
  build "$BASELINE" without
  build HEAD with
fi

SERVER_PID=
stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
trap stop_server EXIT
fresh_database() {
  if [[ $BACKEND == sqlite ]]; then
    rm -f "$WORK/kyc.db" "$WORK/kyc.db-wal" "$WORK/kyc.db-shm"
    DB_URL=sqlite://$WORK/kyc.db
  else
    psql "$PG_ADMIN_URL" -qAt -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" >/dev/null
    DB_URL=${PG_ADMIN_URL%/*}/$PG_DB
  fi
}
sql() {
  if [[ $BACKEND == sqlite ]]; then sqlite3 -batch -cmd ".timeout 30000" "$WORK/kyc.db" "$1"; else psql "$DB_URL" -qAt -c "$1"; fi
}
start_server() { # BINARY
  DATABASE_URL=$DB_URL KYC_BIND=127.0.0.1:$PORT KYC_BOOTSTRAP_API_KEY=$API_KEY KYC_LOG=warn \
    KYC_ENCRYPTION_KEYS=$KEYS KYC_STORAGE=local:$WORK/files "$WORK/$1" serve >>"$OUT/server-$BACKEND-$1.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "the server did not become ready"; exit 1
}
load() { # NAME MODE PATH
  local env=(BENCH_MODE=$2 BENCH_PATH=$3 BENCH_KEY=$API_KEY BENCH_BODY=$HERE/reference_person.json BENCH_IDS=$WORK/ids.txt)
  env "${env[@]}" BENCH_RUN="w$(date +%s%N)" wrk -t2 -c"$CONNS" -d"${WARMUP}s" -s "$HERE/lua/bench.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
  local out
  out=$(env "${env[@]}" BENCH_RUN="$(date +%s%N)" wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s --latency \
    -s "$HERE/lua/bench.lua" "http://127.0.0.1:$PORT" 2>&1)
  echo "$out" >"$OUT/wrk-$BACKEND-$1.txt"
  grep '^WRKJSON ' <<<"$out" | sed 's/^WRKJSON //'
}
rps() { sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$1"; }
p99() { sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p' <<<"$1"; }
errors() { sed -n 's/.*"status_errors":\([0-9]*\).*/\1/p' <<<"$1"; }

printf '| backend | create without | create with | ratio | get without | get with | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n' >"$OUT/table.md"
for BACKEND in $BACKENDS; do
  declare -A result=()
  for BINARY in without with; do
    log "=== $BACKEND, $BINARY ==="
    fresh_database; start_server "$BINARY"
    result[create_$BINARY]=$(load "create-$BINARY" post /identities)
    sql "SELECT id FROM identities" >"$WORK/ids.txt"
    # Fresh tables have no statistics yet: without them PostgreSQL's plans
    # for the gets depend on whether autovacuum happened to run (a first
    # run measured 0.18 that way).
    sql "ANALYZE" >/dev/null
    log "create ($BINARY): ${result[create_$BINARY]}; $(wc -l <"$WORK/ids.txt") identities"
    result[get_$BINARY]=$(load "get-$BINARY" get "/identities/{id}")
    log "get ($BINARY): ${result[get_$BINARY]}"
    stop_server
    for what in create get; do
      [[ $(errors "${result[${what}_$BINARY]}") == 0 ]] || log "warning: $what ($BINARY) had non-2xx answers"
    done
  done
  ratio() { awk -v a="$(rps "${result[$1_with]}")" -v b="$(rps "${result[$1_without]}")" 'BEGIN{printf "%.2f", a/b}'; }
  printf '| %s | %s req/s (p99 %s ms) | %s req/s (p99 %s ms) | **%s** | %s req/s (p99 %s ms) | %s req/s (p99 %s ms) | **%s** |\n' "$BACKEND" \
    "$(rps "${result[create_without]}")" "$(p99 "${result[create_without]}")" \
    "$(rps "${result[create_with]}")" "$(p99 "${result[create_with]}")" "$(ratio create)" \
    "$(rps "${result[get_without]}")" "$(p99 "${result[get_without]}")" \
    "$(rps "${result[get_with]}")" "$(p99 "${result[get_with]}")" "$(ratio get)" >>"$OUT/table.md"
  unset result
done
cat "$OUT/table.md"
