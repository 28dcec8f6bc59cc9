#!/usr/bin/env bash
# Scale-out (issue 22): what a second server process buys on one PostgreSQL
# database, for creates and gets.
#
#   BIN=/path/to/release/kyc-api bash bench/scaleout.sh
#
# A fresh PostgreSQL database; one server fills it through the API
# (FILL_SECONDS of creates), then, ROUNDS times and alternating:
#   one replica    wrk (CONNS connections) against one server
#   two replicas   two wrk at once, CONNS/2 connections each, against two
#                  servers on the same database; the figure is their sum
# for creates (POST /identities, the reference body) and gets (random ids
# among those created). Each measurement starts fresh server processes.
# It records the machine's busy share and PostgreSQL's CPU, so that the
# result says where the limit is. Results: $OUT/results.jsonl, run.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${BIN:?a release kyc-api binary}
FILL_SECONDS=${FILL_SECONDS:-20}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-2}
PORTS=(18280 18281)
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=${PG_DB:-kyc_scaleout}
WORK=${WORK:-/tmp/kyc-scaleout}
OUT=${OUT:-$HERE/results/scaleout-$(date -u +%Y%m%dT%H%M%SZ)}
KEY=kyc_bench_bootstrap_key_0123456789abcdef
mkdir -p "$OUT" "$WORK"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

psql -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB"
DB_URL=${PG_ADMIN_URL%/*}/$PG_DB

PIDS=()
start() { # how many replicas
  local i
  for ((i = 0; i < $1; i++)); do
    DATABASE_URL=$DB_URL KYC_BIND=127.0.0.1:${PORTS[$i]} KYC_ENV=sandbox KYC_BOOTSTRAP_API_KEY=$KEY \
      KYC_STORAGE=local:$WORK/files KYC_LOG=warn KYC_DB_POOL_SIZE=10 "$BIN" >>"$OUT/server-$i.log" 2>&1 &
    PIDS+=($!)
  done
  for ((i = 0; i < $1; i++)); do
    for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:${PORTS[$i]}/health" >/dev/null 2>&1 && break; sleep 0.2; done
  done
}
stop() { kill "${PIDS[@]}" 2>/dev/null || true; wait "${PIDS[@]}" 2>/dev/null || true; PIDS=(); }
trap stop EXIT

# pg_ticks: PostgreSQL backends' user+system ticks; busy: the machine's
# (busy, total) jiffies.
pg_ticks() { local t=0 p; for p in $(pgrep -f 'postgres: ' || true); do
  t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

wrk_json() { # MODE PATH CONNS SECONDS PORT
  env BENCH_MODE="$1" BENCH_PATH="$2" BENCH_KEY="$KEY" BENCH_BODY="$HERE/reference_person.json" \
    BENCH_IDS="$WORK/ids.txt" BENCH_RUN="$(date +%s%N)$5" wrk -t1 -c"$3" -d"$4s" --timeout 30s --latency \
    -s "$HERE/lua/bench.lua" "http://127.0.0.1:$5" 2>&1 | sed -n 's/^WRKJSON //p'
}

measure() { # SCENARIO MODE PATH REPLICAS ROUND
  local scenario=$1 mode=$2 path=$3 n=$4 round=$5 i
  start "$n"
  for ((i = 0; i < n; i++)); do wrk_json "$mode" "$path" $((CONNS / n)) "$WARMUP" "${PORTS[$i]}" >/dev/null & WRK_PIDS+=($!); done
  wait_wrk
  local p0 m0; p0=$(pg_ticks); m0=$(busy)
  for ((i = 0; i < n; i++)); do wrk_json "$mode" "$path" $((CONNS / n)) "$DURATION" "${PORTS[$i]}" >"$WORK/wrk-$i.json" & WRK_PIDS+=($!); done
  wait_wrk
  local p1 m1; p1=$(pg_ticks); m1=$(busy)
  local rps=0 parts=()
  for ((i = 0; i < n; i++)); do
    local j; j=$(cat "$WORK/wrk-$i.json")
    [[ -n $j ]] || { log "wrk failed against replica $i"; exit 1; }
    parts+=("$j")
    rps=$(python3 -c 'import json,sys; print(round(float(sys.argv[1]) + json.loads(sys.argv[2])["rps"], 1))' "$rps" "$j")
  done
  local share; share=$(awk -v a="$m0" -v b="$m1" 'BEGIN{split(a,x," ");split(b,y," "); printf "%.2f", (y[1]-x[1])/(y[2]-x[2])}')
  local pg; pg=$(awk -v a="$p0" -v b="$p1" -v h="$(getconf CLK_TCK)" -v d="$DURATION" 'BEGIN{printf "%.2f", (b-a)/h/d}')
  local IFS=,
  echo "{\"scenario\":\"$scenario\",\"replicas\":$n,\"round\":$round,\"rps\":$rps,\"machine_busy\":$share,\"postgres_cores\":$pg,\"wrk\":[${parts[*]}]}" >>"$RESULTS"
  log "$scenario, $n replica(s), round $round: $rps req/s, machine busy $share, PostgreSQL $pg cores"
  stop
}
WRK_PIDS=()
wait_wrk() { wait "${WRK_PIDS[@]}"; WRK_PIDS=(); }

log "filling for ${FILL_SECONDS}s through the API"
start 1
wrk_json post /identities "$CONNS" "$FILL_SECONDS" "${PORTS[0]}" >/dev/null
stop
psql -qAt "$DB_URL" -c "SELECT id FROM identities ORDER BY random() LIMIT 50000" >"$WORK/ids.txt"
psql -q "$DB_URL" -c "VACUUM ANALYZE"
log "$(wc -l <"$WORK/ids.txt") ids to get"

for round in $(seq 1 "$ROUNDS"); do
  for n in 1 2; do
    measure get get "/identities/{id}" "$n" "$round"
    measure create post /identities "$n" "$round"
  done
done
log "results in $OUT"
