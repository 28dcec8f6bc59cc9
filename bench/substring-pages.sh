#!/usr/bin/env bash
# Latency of substring list pages, counted and not (`page[total]=false`), and
# of the cursor page after them, on a database bench/run.sh seeded (kept in
# /tmp/kyc-bench), for one or more binaries in turn (A/B: BINS="a b a b").
# Each binary gets a fresh server; each URL 4 connections for DURATION s.
#
#   BINS="/path/a /path/b" bash bench/substring-pages.sh sqlite|postgres
#   (DBFILE=... for another SQLite file, PGDB=... for another database;
#    PATTERNS="mail7. seeda50 ..." for other substrings)
#
# The seeded emails are seed<TAG><n>@mail<n % 50>.example.com, numbered in
# creation order: `mail7.` matches 1 identity in 50, spread through the
# list; `seeda50`, `seeda507`, `seeda5074` match ~11,111 / ~1,111 / ~111
# identities bunched together at one place in the list (the far side of
# the newest for a page in `-createdAt` order).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
b=$1
PORT=${PORT:-18091}
DURATION=${DURATION:-8}
CONNS=${CONNS:-4}
PATTERNS=${PATTERNS:-"mail7. seeda50 seeda507 seeda5074"}
OUT=${OUT:-/dev/stdout}
API_KEY=kyc_bench_bootstrap_key_0123456789abcdef
if [[ $b == sqlite ]]; then URL=sqlite://${DBFILE:-/tmp/kyc-bench/kyc-bench.db}; else URL=postgres://postgres@127.0.0.1:5432/${PGDB:-kyc_bench}; fi

one() { # LABEL PATH: one wrk run, one result line
  local out json
  out=$(BENCH_MODE=static BENCH_PATH="$2" BENCH_KEY="$API_KEY" BENCH_RUN="$(date +%s%N)" \
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s --latency -s "$HERE/lua/bench.lua" "http://127.0.0.1:$PORT" 2>&1)
  json=$(grep '^WRKJSON ' <<<"$out" | sed 's/^WRKJSON //')
  [[ -n $json ]] || { echo "wrk failed: $out" >&2; exit 1; }
  echo "{\"backend\":\"$b\",\"bin\":\"$BIN\",\"case\":\"$1\",\"wrk\":$json}" >>"$OUT"
}

for BIN in $BINS; do
  DATABASE_URL=$URL KYC_BIND=127.0.0.1:$PORT KYC_BOOTSTRAP_API_KEY=$API_KEY \
    KYC_LOG=warn KYC_DB_POOL_SIZE=10 "$BIN" serve >/tmp/substring-pages-server.log 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
  for p in $PATTERNS; do
    list="/identities?filter%5Bemail%5D=like:$p&sort=-createdAt&page%5Bsize%5D=30"
    one "$p counted page 1" "$list"
    # A binary without `page[total]` refuses it (400): skipped, not timed.
    if curl -fsS -o /dev/null -H "apiKey: $API_KEY" "http://127.0.0.1:$PORT$list&page%5Btotal%5D=false"; then
      one "$p uncounted page 1" "$list&page%5Btotal%5D=false"
    fi
    next=$(curl -fsS -H "apiKey: $API_KEY" "http://127.0.0.1:$PORT$list" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["links"]["next"] or "")')
    [[ -n $next ]] && one "$p cursor page 2" "$next"
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true
done
