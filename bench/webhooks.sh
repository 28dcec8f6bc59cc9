#!/usr/bin/env bash
# Webhooks benchmark (issue 15): what an enabled endpoint costs creates, and
# how fast the dispatcher delivers.
#
#   bash bench/webhooks.sh                 # both backends
#   BACKENDS=postgres DURATION=10 bash bench/webhooks.sh
#
# Per backend, each on a fresh database with a fresh release server:
#   1. create_no_endpoint: wrk POSTs the reference person (4 events each:
#      identity, 2 documents, verification) with no webhook endpoint;
#   2. create_with_endpoint: the same with one enabled endpoint subscribed to
#      every event, delivering to bench/ceiling's POST /echo (a bare actix-web
#      server that parses the JSON and answers 200), the dispatcher working
#      during the load; then how long the backlog takes to drain;
#   3. dispatch: DELIVERIES pending deliveries inserted by SQL at once, and
#      the time until the dispatcher has delivered them all.
# Results go to bench/results/webhooks-<time>/ and are printed as a table.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BACKENDS=${BACKENDS:-"sqlite postgres"}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-32}
DELIVERIES=${DELIVERIES:-20000}
PORT=${PORT:-18080}
RECEIVER_PORT=${RECEIVER_PORT:-18099}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=${PG_DB:-kyc_bench_webhooks}
WORK=${WORK:-/tmp/kyc-bench-webhooks}
TARGET=${BENCH_TARGET_DIR:-/work/bench-target}
TOOLS_TARGET=${TOOLS_TARGET_DIR:-$TARGET/tools}
OUT=${OUT:-$HERE/results/webhooks-$(date -u +%Y%m%dT%H%M%SZ)}
API_KEY=kyc_bench_bootstrap_key_0123456789abcdef
mkdir -p "$OUT" "$WORK"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v sqlite3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null; }

log "building kyc-api (release) and bench/ceiling"
(cd "$REPO" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet --bin kyc-api)
(cd "$HERE" && CARGO_TARGET_DIR=$TOOLS_TARGET cargo build --release --quiet -p ceiling)
BIN=$TARGET/release/kyc-api
CEILING=$TOOLS_TARGET/release/ceiling

BIND=127.0.0.1:$RECEIVER_PORT "$CEILING" &
RECEIVER_PID=$!
SERVER_PID=
stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
trap 'stop_server; kill $RECEIVER_PID 2>/dev/null || true' EXIT

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
  if [[ $BACKEND == sqlite ]]; then sqlite3 -batch "$WORK/kyc.db" "$1"; else psql "$DB_URL" -qAt -c "$1"; fi
}
start_server() {
  DATABASE_URL=$DB_URL KYC_BIND=127.0.0.1:$PORT KYC_BOOTSTRAP_API_KEY=$API_KEY KYC_LOG=warn \
    KYC_STORAGE=local:$WORK/files KYC_WEBHOOK_POLL_MS=100 "$BIN" serve >>"$OUT/server-$BACKEND.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "the server did not become ready"; exit 1
}
create_load() { # NAME
  local env=(BENCH_MODE=post BENCH_PATH=/identities BENCH_KEY=$API_KEY BENCH_BODY=$HERE/reference_person.json)
  env "${env[@]}" BENCH_RUN="w$(date +%s%N)" wrk -t2 -c"$CONNS" -d"${WARMUP}s" -s "$HERE/lua/bench.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
  local out
  out=$(env "${env[@]}" BENCH_RUN="$(date +%s%N)" wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s --latency \
    -s "$HERE/lua/bench.lua" "http://127.0.0.1:$PORT" 2>&1)
  echo "$out" >"$OUT/wrk-$BACKEND-$1.txt"
  grep '^WRKJSON ' <<<"$out" | sed 's/^WRKJSON //'
}
# Deliveries still to send: those made and pending, and those of events the
# dispatcher's fan-out has not reached yet (after an endpoint's cursor).
pending() {
  sql "SELECT (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending')
            + (SELECT COUNT(*) FROM events e JOIN webhook_endpoints w ON w.app_id = e.app_id
               WHERE w.enabled AND w.deleted_at IS NULL
                 AND (e.position > w.fanned_out_position
                      OR (e.position = w.fanned_out_position AND e.id > w.fanned_out_event_id)))"
}
drain_seconds() { # waits until nothing is pending; prints the seconds it took
  local started; started=$(date +%s.%N)
  while (($(pending) > 0)); do sleep 0.2; done
  awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'
}
rps() { sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$1"; }
p99() { sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p' <<<"$1"; }

printf '| backend | create, no endpoint | create, one endpoint | ratio | backlog drained after the load | dispatcher: %s pending deliveries |\n|---|---:|---:|---:|---:|---:|\n' "$DELIVERIES" >"$OUT/table.md"
for BACKEND in $BACKENDS; do
  log "=== $BACKEND ==="
  fresh_database; start_server
  without=$(create_load create_no_endpoint)
  log "create without an endpoint: $without"
  stop_server

  fresh_database; start_server
  curl -fsS -H "apiKey: $API_KEY" -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/webhook-endpoints" \
    -d "{\"url\": \"http://127.0.0.1:$RECEIVER_PORT/echo\"}" >/dev/null
  with=$(create_load create_with_endpoint)
  log "create with an endpoint: $with"
  backlog=$(pending)
  drained=$(drain_seconds)
  log "backlog of $backlog deliveries drained in ${drained}s"

  # Deliveries made pending all at once, for events already there.
  endpoint=$(sql "SELECT id FROM webhook_endpoints LIMIT 1")
  if [[ $BACKEND == sqlite ]]; then
    uuid="lower(substr(h,1,8)||'-'||substr(h,9,4)||'-4'||substr(h,14,3)||'-a'||substr(h,18,3)||'-'||substr(h,21,12))"
    sql "INSERT INTO webhook_deliveries SELECT $uuid, app_id, '$endpoint', id, 'pending', 0, datetime('now'), NULL, datetime('now'), datetime('now') FROM (SELECT hex(randomblob(16)) AS h, app_id, id FROM events LIMIT $DELIVERIES)"
  else
    sql "INSERT INTO webhook_deliveries SELECT gen_random_uuid()::text, app_id, '$endpoint', id, 'pending', 0, now() AT TIME ZONE 'utc', NULL, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc' FROM events LIMIT $DELIVERIES"
  fi
  n=$(pending)
  seconds=$(drain_seconds)
  rate=$(awk -v n="$n" -v s="$seconds" 'BEGIN{printf "%.0f", n/s}')
  log "dispatcher: $n deliveries in ${seconds}s = $rate/s"
  failed=$(sql "SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'delivered'")
  [[ $failed == 0 ]] || log "warning: $failed deliveries did not end delivered"
  stop_server

  ratio=$(awk -v a="$(rps "$with")" -v b="$(rps "$without")" 'BEGIN{printf "%.2f", a/b}')
  printf '| %s | %s req/s (p99 %s ms) | %s req/s (p99 %s ms) | %s | %s deliveries in %s s | %s in %s s = **%s/s** |\n' \
    "$BACKEND" "$(rps "$without")" "$(p99 "$without")" "$(rps "$with")" "$(p99 "$with")" "$ratio" \
    "$backlog" "$drained" "$n" "$seconds" "$rate" >>"$OUT/table.md"
done
cat "$OUT/table.md"
