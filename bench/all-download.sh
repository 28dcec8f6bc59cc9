#!/usr/bin/env bash
# Times RUNS sequential `GET /identities?all=true` downloads of the
# `bench-all` app of a database bench/run.sh seeded (kept in /tmp/kyc-bench),
# by one binary: seconds, bytes, rows/s, the CPU of the server, of PostgreSQL
# (all its processes) and of curl, the server's minor page faults, how busy
# the whole machine was, the server's peak RSS, and a hash of the last body
# (two binaries must answer byte for byte the same).
# BENCHMARKS.md's A/B figures for all=true ("Performance, third round") are
# this script run alternately for two binaries on the same database.
#
#   BIN=/path/to/kyc-api bash bench/all-download.sh sqlite|postgres [RUNS]
#   (DBFILE=... for another SQLite file, PGDB=... for another database,
#   APP_NAME=... for another app than bench-all, ROWS=... its identities,
#   POOL=... the server's KYC_DB_POOL_SIZE (default 10; with 1 a PostgreSQL
#   stream has no second connection to read its parts on);
#   COPY=1 on PostgreSQL: also RUNS of PostgreSQL's own COPY of the same
#   identities joined with their children, as bench/run.sh's
#   all_export_children, with the same CPU figures)
set -euo pipefail
b=$1; runs=${2:-3}; PORT=${PORT:-18090}; APP_NAME=${APP_NAME:-bench-all}; ROWS=${ROWS:-100000}
if [[ $b == sqlite ]]; then URL=sqlite://${DBFILE:-/tmp/kyc-bench/kyc-bench.db}; else URL=postgres://postgres@127.0.0.1:5432/${PGDB:-kyc_bench}; fi
[[ -x /usr/bin/time ]] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
KEYF=/tmp/all-download-key-$b-$(echo "${PGDB:-}${DBFILE:-}" | tr / _)-$APP_NAME
if [[ $b == sqlite ]]; then APP=$(sqlite3 "${URL#sqlite://}" "select id from apps where name='$APP_NAME'"); else APP=$(psql -qAt "$URL" -c "select id from apps where name='$APP_NAME'"); fi
if [[ ! -s $KEYF ]]; then
  DATABASE_URL=$URL KYC_LOG=warn "$BIN" keys create "$APP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])' >"$KEYF"
fi
KEY=$(cat "$KEYF")
DATABASE_URL=$URL KYC_BIND=127.0.0.1:$PORT KYC_BOOTSTRAP_API_KEY=kyc_bench_bootstrap_key_0123456789abcdef \
  KYC_LOG=warn KYC_DB_POOL_SIZE=${POOL:-10} "$BIN" serve >/tmp/all-download-server.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Every PostgreSQL process's CPU, and (the postmaster's cutime and cstime)
# that of the backends that have exited: a COPY's backend ends with psql.
pg_ticks() {
  local t=0 p
  local v
  # A backend may exit between pgrep and the read.
  for p in $(pgrep -x postgres || true); do v=$(ticks "$p" 2>/dev/null) || v=0; t=$((t + ${v:-0})); done
  p=$(pgrep -o -x postgres || true)
  [[ -n $p ]] && t=$((t + $(awk '{print $16 + $17}' "/proc/$p/stat")))
  echo "$t"
}
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
ms() { echo $((($2 - $1) * 1000 / $(getconf CLK_TCK))); }
for r in $(seq 1 "$runs"); do
  c0=$(ticks "$PID"); p0=$(pg_ticks); f0=$(awk '{print $10}' "/proc/$PID/stat"); m0=$(busy)
  s=$(/usr/bin/time -f '%U %S' -o /tmp/all-download.time \
    curl -fsS -o /tmp/all-download.json -w '%{time_total} %{size_download}' -H "apiKey: $KEY" "http://127.0.0.1:$PORT/identities?all=true")
  c1=$(ticks "$PID"); p1=$(pg_ticks); f1=$(awk '{print $10}' "/proc/$PID/stat"); m1=$(busy)
  echo "$b run $r: ${s% *} s, ${s#* } bytes, $(awk -v t="${s% *}" -v n="$ROWS" 'BEGIN{printf "%d", n/t}') rows/s," \
    "server cpu $(ms "$c0" "$c1") ms, postgres cpu $( [[ $b == postgres ]] && ms "$p0" "$p1" || echo 0) ms," \
    "curl cpu $(awk '{printf "%d", ($1 + $2) * 1000}' /tmp/all-download.time) ms, server page faults $((f1 - f0))," \
    "machine busy $(awk -v a="$m0" -v b="$m1" 'BEGIN{split(a,x," "); split(b,y," "); printf "%.2f", (y[1]-x[1])/(y[2]-x[2])}')," \
    "peak RSS $(awk '/VmHWM/{print $2}' "/proc/$PID/status") KiB"
done
if [[ $b == postgres && ${COPY:-0} == 1 ]]; then
  # shellcheck source=bench/export-children.sh
  . "$(dirname "${BASH_SOURCE[0]}")/export-children.sh"
  select=$(children_export_select "$APP")
  for r in $(seq 1 "$runs"); do
    p0=$(pg_ticks); m0=$(busy); t0=$(date +%s%N)
    /usr/bin/time -f '%U %S' -o /tmp/all-download.time psql -qAt "$URL" -c "COPY ($select) TO STDOUT" >/tmp/all-download.copy
    t1=$(date +%s%N); p1=$(pg_ticks); m1=$(busy)
    echo "COPY run $r: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}') s, $(stat -c %s /tmp/all-download.copy) bytes," \
      "postgres cpu $(ms "$p0" "$p1") ms, psql cpu $(awk '{printf "%d", ($1 + $2) * 1000}' /tmp/all-download.time) ms," \
      "machine busy $(awk -v a="$m0" -v b="$m1" 'BEGIN{split(a,x," "); split(b,y," "); printf "%.2f", (y[1]-x[1])/(y[2]-x[2])}')"
  done
fi
echo "body $(md5sum /tmp/all-download.json | cut -c1-12)"
