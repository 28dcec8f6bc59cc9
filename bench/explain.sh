#!/usr/bin/env bash
# Plans and timings of the list queries (scenario 3) on the databases that
# bench/run.sh left behind (run it after run.sh, with the same WORK/PG_DB).
# The SQL is what kyc-api sends (PostgreSQL log_statement=all); SQLite runs
# through bench/sqlite-limit's `sql` mode so the SQLite version is the
# server's own (bundled 3.50.x), not the sqlite3 CLI's.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=${WORK:-/tmp/kyc-bench}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/${PG_DB:-kyc_bench}}
SQLITE_DB=${SQLITE_DB:-$WORK/kyc-bench.db}
SQL_TOOL=${SQL_TOOL:-${TOOLS_TARGET_DIR:-/work/bench-target/tools}/release/sqlite-limit}
LIKE=${LIKE:-%@mail7.%}
RARE=${RARE:-%seeda500000@%}
DEEP_OFFSET=${DEEP_OFFSET:-19980}

COLS='"identities"."id", "identities"."app_id", "identities"."identity_type", "identities"."name", "identities"."email", "identities"."birthday", "identities"."gender", "identities"."address_street", "identities"."address_city", "identities"."address_state", "identities"."address_postal_code", "identities"."address_country", "identities"."phone_number", "identities"."phone_sms", "identities"."tax_country", "identities"."tax_id_number", "identities"."tax_state", "identities"."tax_formation_region", "identities"."identity_owner", "identities"."blocked", "identities"."identity_confirmed", "identities"."risk_rating", "identities"."created_at", "identities"."updated_at", "identities"."deleted_at"'
page() { # APP LIKE OFFSET
  echo "SELECT $COLS FROM \"identities\" WHERE (((\"identities\".\"app_id\" = '$1') AND (\"identities\".\"deleted_at\" IS NULL)) AND (lower(\"identities\".\"email\") LIKE '$2' ESCAPE '\\')) ORDER BY \"identities\".\"created_at\" DESC, \"identities\".\"id\" DESC LIMIT 30 OFFSET $3"
}
count() { # APP LIKE
  echo "SELECT COUNT(*) FROM \"identities\" WHERE (((\"identities\".\"app_id\" = '$1') AND (\"identities\".\"deleted_at\" IS NULL)) AND (lower(\"identities\".\"email\") LIKE '$2' ESCAPE '\\'))"
}

if [[ ${BACKENDS:-sqlite postgres} == *postgres* ]]; then
  APP=$(psql -qAt "$PG_URL" -c "SELECT id FROM apps WHERE name = 'default'")
  for q in "$(page "$APP" "$LIKE" 0)" "$(page "$APP" "$LIKE" "$DEEP_OFFSET")" "$(count "$APP" "$LIKE")" \
    "$(page "$APP" "$RARE" 0)" "$(count "$APP" "$RARE")"; do
    echo "### PostgreSQL: ${q:0:60}... ${q: -120}"
    echo '```'
    psql -qAt "$PG_URL" -c "EXPLAIN (ANALYZE, BUFFERS) $q" | sed 's/^/    /'
    echo '```'
  done
fi
if [[ ${BACKENDS:-sqlite postgres} == *sqlite* ]]; then
  APP=$("$SQL_TOOL" sql "$SQLITE_DB" "SELECT id FROM apps WHERE name = 'default'" | sed -n 1p)
  for q in "$(page "$APP" "$LIKE" 0)" "$(page "$APP" "$LIKE" "$DEEP_OFFSET")" "$(count "$APP" "$LIKE")" \
    "$(page "$APP" "$RARE" 0)" "$(count "$APP" "$RARE")"; do
    echo "### SQLite: ${q:0:60}... ${q: -120}"
    echo '```'
    "$SQL_TOOL" sql "$SQLITE_DB" "EXPLAIN QUERY PLAN $q" | grep -v '^(' | sed 's/^/    /'
    "$SQL_TOOL" sql "$SQLITE_DB" "$q" 3 | tail -1 | sed 's/^/    /'
    echo '```'
  done
fi
