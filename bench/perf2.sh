#!/usr/bin/env bash
# Substring search, all=true and create, before and after, on the same
# data (issue 22). Two release binaries, BASE and HEAD:
#
#   BASE_BIN=... HEAD_BIN=... bash bench/perf2.sh
#
# Per backend: a fresh database; BASE creates LOAD_SECONDS of identities
# through the API (wrk, 32 connections; emails wrk-<run>-<thread>-<n>@bench.example,
# so every row is the server's own, with its sealed fields); BASE is
# measured; then HEAD starts on the same database (its migrations run) and
# is measured the same way. Measured:
#   sub_rare    GET /identities?filter[email]=like:-1-77&page[size]=30   (4 conns)
#   sub_common  GET /identities?filter[email]=like:-2-1&page[size]=30    (4 conns)
#   create      POST /identities (32 conns)
#   all         GET /identities?all=true, ALL_RUNS times: seconds, rows, peak RSS
#   export      (HEAD pass) the database's own JSON export of the same rows
# Results: $OUT/results.jsonl and run.log. Creates run last in each pass,
# so HEAD's creates meet a database that BASE's creates made larger.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE_BIN=${BASE_BIN:?}
HEAD_BIN=${HEAD_BIN:?}
BACKENDS=${BACKENDS:-"sqlite postgres"}
LOAD_SECONDS=${LOAD_SECONDS:-60}
DURATION=${DURATION:-15}
ALL_RUNS=${ALL_RUNS:-3}
PORT=${PORT:-18180}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
WORK=${WORK:-/tmp/kyc-perf2}
OUT=${OUT:-$HERE/results/perf2-$(date -u +%Y%m%dT%H%M%SZ)}
KEY=kyc_bench_bootstrap_key_0123456789abcdef
mkdir -p "$OUT" "$WORK"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
record() { local IFS=,; echo "{$*}" >>"$RESULTS"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

SERVER_PID=""
start() { # BIN DB_URL NAME
  DATABASE_URL=$2 KYC_BIND=127.0.0.1:$PORT KYC_ENV=sandbox KYC_BOOTSTRAP_API_KEY=$KEY \
    KYC_STORAGE=local:$WORK/files KYC_LOG=warn KYC_DB_POOL_SIZE=10 "$1" >>"$OUT/server-$3.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "server $3 did not start"; exit 1
}
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
trap '[[ -n $SERVER_PID ]] && kill $SERVER_PID 2>/dev/null || true' EXIT

wrk_json() { # MODE PATH CONNS SECONDS
  env BENCH_MODE="$1" BENCH_PATH="$2" BENCH_KEY="$KEY" BENCH_BODY="$HERE/reference_person.json" \
    BENCH_RUN="$(date +%s%N)" wrk -t2 -c"$3" -d"$4s" --timeout 30s --latency -s "$HERE/lua/bench.lua" \
    "http://127.0.0.1:$PORT" 2>&1 | sed -n 's/^WRKJSON //p'
}

measure() { # BACKEND BINARY-NAME
  local b=$1 v=$2 json
  for s in "sub_rare:/identities?filter%5Bemail%5D=like:-1-77&page%5Bsize%5D=30" \
           "sub_common:/identities?filter%5Bemail%5D=like:-2-1&page%5Bsize%5D=30"; do
    wrk_json static "${s#*:}" 4 3 >/dev/null
    json=$(wrk_json static "${s#*:}" 4 "$DURATION")
    record "\"backend\":\"$b\"" "\"binary\":\"$v\"" "\"scenario\":\"${s%%:*}\"" "\"wrk\":$json"
    log "$b $v ${s%%:*}: $json"
  done
  local base_rss; base_rss=$(hwm_kib "$SERVER_PID")
  for r in $(seq 1 "$ALL_RUNS"); do
    local stats; stats=$(curl -fsS -o "$WORK/all.json" -w '%{time_total} %{size_download}' \
      -H "apiKey: $KEY" "http://127.0.0.1:$PORT/identities?all=true")
    local rows; rows=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["data"]) == d["total"]; print(d["total"])' "$WORK/all.json")
    record "\"backend\":\"$b\"" "\"binary\":\"$v\"" "\"scenario\":\"all\"" "\"run\":$r" "\"seconds\":${stats% *}" \
      "\"bytes\":${stats#* }" "\"rows\":$rows" "\"peak_rss_kib\":$(hwm_kib "$SERVER_PID")" "\"start_rss_kib\":$base_rss"
    log "$b $v all run $r: ${stats% *}s ${stats#* } bytes $rows rows, peak RSS $(hwm_kib "$SERVER_PID") KiB"
  done
  json=$(wrk_json post /identities 32 "$DURATION")
  record "\"backend\":\"$b\"" "\"binary\":\"$v\"" "\"scenario\":\"create\"" "\"wrk\":$json"
  log "$b $v create: $json"
}

export_rows() { # BACKEND DB_URL
  local b=$1 url=$2 app
  for r in $(seq 1 "$ALL_RUNS"); do
    local t0 t1; t0=$(date +%s%N)
    if [[ $b == sqlite ]]; then
      sqlite3 -json "${url#sqlite://}" "SELECT * FROM identities WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC" >"$WORK/export.json"
    else
      psql -qAt "$url" -c "COPY (SELECT row_to_json(i) FROM identities i WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC) TO STDOUT" >"$WORK/export.json"
    fi
    t1=$(date +%s%N)
    local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    record "\"backend\":\"$b\"" "\"scenario\":\"export\"" "\"run\":$r" "\"seconds\":$secs" "\"bytes\":$(stat -c %s "$WORK/export.json")"
    log "$b export run $r: ${secs}s $(stat -c %s "$WORK/export.json") bytes"
  done
}

for b in $BACKENDS; do
  rm -rf "$WORK/files" "$WORK"/kyc.db*; mkdir -p "$WORK/files"
  if [[ $b == sqlite ]]; then
    url=sqlite://$WORK/kyc.db
  else
    psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS kyc_perf2" -c "CREATE DATABASE kyc_perf2"
    url=${PG_ADMIN_URL%/*}/kyc_perf2
  fi
  start "$BASE_BIN" "$url" "$b-base"
  log "$b: loading for ${LOAD_SECONDS}s"
  log "$b load: $(wrk_json post /identities 32 "$LOAD_SECONDS")"
  [[ $b == postgres ]] && psql -q "$url" -c "VACUUM ANALYZE"
  measure "$b" base
  stop
  start "$HEAD_BIN" "$url" "$b-head"
  [[ $b == postgres ]] && psql -q "$url" -c "VACUUM ANALYZE"
  measure "$b" head
  stop
  export_rows "$b" "$url"
done
log "results in $OUT"
