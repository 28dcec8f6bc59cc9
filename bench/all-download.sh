#!/usr/bin/env bash
# Times RUNS sequential `GET /identities?all=true` downloads of the
# `bench-all` app of a database bench/run.sh seeded (kept in /tmp/kyc-bench),
# by one binary: seconds, bytes, rows/s, the server's CPU and peak RSS, and a
# hash of the last body (two binaries must answer byte for byte the same).
# BENCHMARKS.md's A/B figures for all=true ("Performance, third round") are
# this script run alternately for two binaries on the same database.
#
#   BIN=/path/to/kyc-api bash bench/all-download.sh sqlite|postgres [RUNS]
#   (DBFILE=... for another SQLite file, PGDB=... for another database)
set -euo pipefail
b=$1; runs=${2:-3}; PORT=${PORT:-18090}
if [[ $b == sqlite ]]; then URL=sqlite://${DBFILE:-/tmp/kyc-bench/kyc-bench.db}; else URL=postgres://postgres@127.0.0.1:5432/${PGDB:-kyc_bench}; fi
KEYF=/tmp/all-download-key-$b
if [[ ! -s $KEYF ]]; then
  if [[ $b == sqlite ]]; then APP=$(sqlite3 "${URL#sqlite://}" "select id from apps where name='bench-all'"); else APP=$(psql -qAt "$URL" -c "select id from apps where name='bench-all'"); fi
  DATABASE_URL=$URL KYC_LOG=warn "$BIN" keys create "$APP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])' >"$KEYF"
fi
KEY=$(cat "$KEYF")
DATABASE_URL=$URL KYC_BIND=127.0.0.1:$PORT KYC_BOOTSTRAP_API_KEY=kyc_bench_bootstrap_key_0123456789abcdef \
  KYC_LOG=warn KYC_DB_POOL_SIZE=10 "$BIN" serve >/tmp/all-download-server.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
for r in $(seq 1 "$runs"); do
  c0=$(awk '{print $14+$15}' "/proc/$PID/stat")
  s=$(curl -fsS -o /tmp/all-download.json -w '%{time_total} %{size_download}' -H "apiKey: $KEY" "http://127.0.0.1:$PORT/identities?all=true")
  c1=$(awk '{print $14+$15}' "/proc/$PID/stat")
  echo "$b run $r: ${s% *} s, ${s#* } bytes, $(awk -v t="${s% *}" 'BEGIN{printf "%d", 100000/t}') rows/s," \
    "server cpu $(((c1 - c0) * 1000 / $(getconf CLK_TCK))) ms, peak RSS $(awk '/VmHWM/{print $2}' "/proc/$PID/status") KiB"
done
echo "body $(md5sum /tmp/all-download.json | cut -c1-12)"
