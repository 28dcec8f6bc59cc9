#!/usr/bin/env bash
# Substring searches of a small app beside a large one: what one app's
# identities cost another's search (BENCHMARKS.md, "Substring indexes per
# app").
#
#   N_BIG=1000000 N_SMALL=2000 bash bench/tenant-search.sh seed sqlite|postgres
#   BINS="/path/a /path/b" bash bench/tenant-search.sh measure sqlite|postgres
#
# `seed` makes a fresh database (PostgreSQL `kyc_tenants`, SQLite
# /tmp/kyc-bench/kyc-tenants.db) with app `default` (N_BIG identities, tag
# a) and app `small` (N_SMALL, tag b), copies of a template the server made
# (bench/seed.py), and keeps the small app's key beside it. `measure` runs
# each binary in turn on it and prints, per app, pattern and page (counted,
# or `page[total]=false`), the median of 7 requests made one at a time.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
what=$1 b=$2
PORT=${PORT:-18096}
KEY=kyc_bench_bootstrap_key_0123456789abcdef
DIR=/tmp/kyc-bench
mkdir -p "$DIR"
if [[ $b == sqlite ]]; then
  DB=$DIR/kyc-tenants.db URL=sqlite://$DIR/kyc-tenants.db
else
  DB=kyc_tenants URL=postgres://postgres@127.0.0.1:5432/kyc_tenants
fi
SMALL_KEY_FILE=$DIR/tenants-small-key-$b

start() { # BIN [BOOTSTRAP]
  DATABASE_URL=$URL KYC_BIND=127.0.0.1:$PORT KYC_BOOTSTRAP_API_KEY=$KEY KYC_LOG=warn \
    "$1" serve >"$DIR/tenant-search-server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "the server did not start" >&2; exit 1
}

template() { # API_KEY: the id of an identity the server makes from the reference body
  curl -fsS -X POST -H "apiKey: $1" -H 'content-type: application/json' \
    --data @"$HERE/reference_person.json" "http://127.0.0.1:$PORT/identities" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])'
}

if [[ $what == seed ]]; then
  BIN=${BIN:-$HERE/../target/release/kyc-api}
  if [[ $b == sqlite ]]; then
    rm -f "$DB" "$DB-wal" "$DB-shm"
  else
    psql -q postgres://postgres@127.0.0.1:5432/postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
  fi
  DATABASE_URL=$URL "$BIN" migrate >/dev/null
  start "$BIN"
  small=$(DATABASE_URL=$URL "$BIN" apps create small)
  small_key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apiKey"])' "$small")
  small_app=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["appId"])' "$small")
  echo "$small_key" >"$SMALL_KEY_FILE"
  big_template=$(template "$KEY") small_template=$(template "$small_key")
  kill "$PID"; wait "$PID" 2>/dev/null || true
  if [[ $b == sqlite ]]; then
    big_app=$(sqlite3 "$DB" "SELECT id FROM apps WHERE name = 'default'")
    python3 "$HERE/seed.py" sqlite "$DB" "$big_app" "${N_BIG:-1000000}" "$big_template" a | sqlite3 "$DB" >/dev/null
    python3 "$HERE/seed.py" sqlite "$DB" "$small_app" "${N_SMALL:-2000}" "$small_template" b | sqlite3 "$DB" >/dev/null
  else
    big_app=$(psql -qAt "$URL" -c "SELECT id FROM apps WHERE name = 'default'")
    python3 "$HERE/seed.py" postgres "$URL" "$big_app" "${N_BIG:-1000000}" "$big_template" a | psql -q "$URL" >/dev/null
    python3 "$HERE/seed.py" postgres "$URL" "$small_app" "${N_SMALL:-2000}" "$small_template" b | psql -q "$URL" >/dev/null
    psql -q "$URL" -c "VACUUM ANALYZE"
  fi
  echo "seeded: default $big_app, small $small_app"
  exit 0
fi

small_key=$(cat "$SMALL_KEY_FILE")
for BIN in $BINS; do
  echo "## $BIN"
  start "$BIN"
  for who in small big; do
    key=$small_key; [[ $who == big ]] && key=$KEY
    for p in ${PATTERNS:-mail7. example.com xample seeda50 seeda507 seeda5074}; do
      for page in counted uncounted; do
        q="/identities?filter%5Bemail%5D=like:$p&sort=-createdAt&page%5Bsize%5D=30"
        [[ $page == uncounted ]] && q="$q&page%5Btotal%5D=false"
        times=$(for _ in 1 2 3 4 5 6 7; do
          curl -fsS -o /dev/null -w '%{time_total}\n' -H "apiKey: $key" "http://127.0.0.1:$PORT$q"
        done | sort -n | sed -n 4p)
        printf '%-6s %-12s %-10s median %7.1f ms\n' "$who" "$p" "$page" "$(python3 -c "print($times * 1000)")"
      done
    done
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true
done
