#!/usr/bin/env bash
# kyc-api benchmark harness (issue 7). See BENCHMARKS.md for what it measures.
#
#   bash bench/run.sh                         # the full run (1,000,000 + 100,000 rows, both backends)
#   ROWS=10000 ALL_ROWS=10000 DURATION=5 bash bench/run.sh   # a smoke run
#
# It installs what it needs (wrk, sqlite3, the PostgreSQL client), builds a
# release kyc-api from a snapshot of HEAD in its own target dir, builds the
# helpers in bench/ (the bare actix-web ceiling and the SQLite limit driver),
# then per backend: fresh database, seed, and one wrk run per scenario with a
# fresh server process (so VmHWM is that scenario's peak RSS), the limits
# (pgbench / sqlite-limit with the server's own SQL), and prints one table.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/export-children.sh
. "$HERE/export-children.sh"

# ---- parameters -------------------------------------------------------------
BACKENDS=${BACKENDS:-"sqlite postgres"}
ROWS=${ROWS:-1000000}            # identities of the `default` app (scenarios 2-4)
ALL_ROWS=${ALL_ROWS:-100000}     # identities of a second app (scenario 5, all=true)
DURATION=${DURATION:-20}         # seconds per measured load run
WARMUP=${WARMUP:-3}              # seconds of load before each measured run
CONNS=${CONNS:-32}               # concurrent connections (and limit clients)
LIST_CONNS=${LIST_CONNS:-4}      # connections for the list scenarios (3a-c): their latency, not queueing
WRK_THREADS=${WRK_THREADS:-2}
REPEAT=${REPEAT:-1}              # measured runs per scenario
ALL_RUNS=${ALL_RUNS:-3}          # sequential all=true downloads
PORT=${PORT:-18080}
CEILING_PORT=${CEILING_PORT:-18099}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=${PG_DB:-kyc_bench}
WORK=${WORK:-/tmp/kyc-bench}
SRC=${SRC:-$WORK/src}                          # snapshot of the repository's HEAD
TARGET=${BENCH_TARGET_DIR:-/work/bench-target} # release build of kyc-api
TOOLS_TARGET=${TOOLS_TARGET_DIR:-$TARGET/tools}
KYC_LOG=${KYC_LOG:-warn}         # per-request info logs are an extra cost; see BENCHMARKS.md
KYC_DB_POOL_SIZE=${KYC_DB_POOL_SIZE:-10}
KYC_WORKERS=${KYC_WORKERS:-0}
SCENARIOS=${SCENARIOS:-"ceiling create create_limit get get_limit list_first list_deep list_middle list_page_middle list_cursor_middle list_cursor_shallow list_unfiltered_first list_rare list_substring list_substring_rare list_verifications list_verifications_pending operations all all_export all_export_children"}
WAIT_FOR_IDLE=${WAIT_FOR_IDLE:-600}   # wait up to this many seconds for no rustc before each run
LIKE_COMMON=${LIKE_COMMON:-"@mail7."} # matches 1 identity in 50
OUT=${OUT:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}
API_KEY=kyc_bench_bootstrap_key_0123456789abcdef

mkdir -p "$OUT" "$WORK"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

# ---- tools ------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
{ command -v pgbench >/dev/null && command -v psql >/dev/null; } || need_apt+=(postgresql-client)
command -v curl >/dev/null || need_apt+=(curl)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# ---- build --------------------------------------------------------------------
if [[ -d $SRC/.git ]]; then
  git -C "$SRC" fetch -q "$REPO" HEAD && git -C "$SRC" reset -q --hard FETCH_HEAD
else
  git clone -q "$REPO" "$SRC"
fi
COMMIT=$(git -C "$SRC" rev-parse --short HEAD)
log "building kyc-api $COMMIT (release, CARGO_TARGET_DIR=$TARGET)"
(cd "$SRC" && CARGO_TARGET_DIR=$TARGET nice -n 5 cargo build --release --quiet --bin kyc-api)
BIN=$TARGET/release/kyc-api
log "building bench helpers (CARGO_TARGET_DIR=$TOOLS_TARGET)"
(cd "$HERE" && CARGO_TARGET_DIR=$TOOLS_TARGET nice -n 5 cargo build --release --quiet)
CEILING=$TOOLS_TARGET/release/ceiling
SQLITE_LIMIT=$TOOLS_TARGET/release/sqlite-limit
HAS_OPERATIONS=0
grep -q '/identities/{id}/operations' "$SRC/src/routes/mod.rs" && HAS_OPERATIONS=1

# ---- helpers -----------------------------------------------------------------
wait_idle() {
  local waited=0
  while (($(pgrep -c rustc || true) > 0)) && ((waited < WAIT_FOR_IDLE)); do
    sleep 5; waited=$((waited + 5))
  done
  local busy; busy=$(pgrep -c rustc || true)
  ((busy == 0)) || log "warning: $busy rustc processes running during the measurement"
  echo "$busy"
}

cpu_ticks() { # utime+stime of one pid, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
pg_ticks() { # all postgres processes
  local t=0 p
  for p in $(pgrep -x postgres || true); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}
machine_busy() { # busy and total jiffies of the whole machine
  awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat
}
hwm_kib() { awk '/VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

SERVER_PID=
start_server() {
  stop_server
  DATABASE_URL=$DB_URL KYC_BIND=127.0.0.1:$PORT KYC_BOOTSTRAP_API_KEY=$API_KEY KYC_LOG=$KYC_LOG \
    KYC_DB_POOL_SIZE=$KYC_DB_POOL_SIZE KYC_WORKERS=$KYC_WORKERS "$BIN" serve >>"$OUT/server-$BACKEND.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server died; see $OUT/server-$BACKEND.log"; exit 1; }
    sleep 0.1
  done
  log "server did not answer /health"; exit 1
}
stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
trap 'stop_server; [[ -n ${CEILING_PID:-} ]] && kill "$CEILING_PID" 2>/dev/null; true' EXIT

# record BACKEND SCENARIO JSON-FIELDS...: one result line
record() {
  local backend=$1 scenario=$2; shift 2
  local fields; fields=$(IFS=,; echo "$*")
  echo "{\"backend\":\"$backend\",\"scenario\":\"$scenario\",$fields}" >>"$RESULTS"
}

# export_runs SCENARIO SQLITE_SELECT PG_COPY: ALL_RUNS timed exports by the
# database itself (`sqlite3 -json` / psql); `rows` counts what it wrote (JSON
# objects / lines: one per document for the joined export), `identities` the
# identities it covers.
export_runs() {
  local scenario=$1 sqlite_sql=$2 pg_sql=$3 r t0 t1 size rows secs
  wait_idle >/dev/null
  for r in $(seq 1 "$ALL_RUNS"); do
    t0=$(date +%s%N)
    if [[ $BACKEND == sqlite ]]; then
      sqlite3 -json "$DB_FILE" "$sqlite_sql" >"$WORK/export.json"
    else
      psql -qAt "$DB_URL" -c "$pg_sql" >"$WORK/export.json"
    fi
    t1=$(date +%s%N)
    size=$(stat -c %s "$WORK/export.json")
    rows=$(if [[ $BACKEND == sqlite ]]; then grep -c '^{\|^\[{\|^,{' "$WORK/export.json" || true; else wc -l <"$WORK/export.json"; fi)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    record "$BACKEND" "$scenario" "\"run\":$r" "\"seconds\":$secs" "\"bytes\":$size" "\"rows\":$rows" "\"identities\":$ALL_ROWS"
    log "$BACKEND $scenario run $r: ${secs}s $size bytes $rows rows"
  done
}

# wrk_run BACKEND SCENARIO PID(for RSS/CPU; 0 = none) MODE PATH [extra env...]
wrk_run() {
  local backend=$1 scenario=$2 pid=$3 mode=$4 path=$5 port=${PORT} conns=$CONNS
  [[ $scenario == ceiling* ]] && port=$CEILING_PORT
  [[ $scenario == list_* ]] && conns=$LIST_CONNS
  local env=(BENCH_MODE="$mode" BENCH_PATH="$path" BENCH_KEY="$API_KEY" BENCH_IDS="$IDS_FILE"
    BENCH_BODY="$HERE/reference_person.json" BENCH_RUN="$(date +%s%N)")
  local r
  for r in $(seq 1 "$REPEAT"); do
    local rustc; rustc=$(wait_idle)
    if ((WARMUP > 0)); then
      env "${env[@]}" wrk -t"$WRK_THREADS" -c"$conns" -d"${WARMUP}s" -s "$HERE/lua/bench.lua" \
        "http://127.0.0.1:$port" >/dev/null 2>&1 || true
    fi
    local s0 p0 m0; s0=$( ((pid > 0)) && cpu_ticks "$pid" || echo 0); p0=$(pg_ticks); m0=$(machine_busy)
    local out
    out=$(env "${env[@]}" BENCH_RUN="$(date +%s%N)" wrk -t"$WRK_THREADS" -c"$conns" -d"${DURATION}s" \
      --timeout 30s --latency -s "$HERE/lua/bench.lua" "http://127.0.0.1:$port" 2>&1)
    echo "$out" >>"$OUT/wrk-$backend-$scenario.txt"
    local s1 p1 m1; s1=$( ((pid > 0)) && cpu_ticks "$pid" || echo 0); p1=$(pg_ticks); m1=$(machine_busy)
    local json; json=$(grep '^WRKJSON ' <<<"$out" | sed 's/^WRKJSON //')
    [[ -n $json ]] || { log "wrk failed: $out"; exit 1; }
    local hz; hz=$(getconf CLK_TCK)
    local busy; busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN{split(a,x," ");split(b,y," "); printf "%.2f", (y[1]-x[1])/(y[2]-x[2])}')
    record "$backend" "$scenario" "\"run\":$r" "\"conns\":$conns" "\"wrk\":$json" \
      "\"server_cpu_s\":$(awk -v a="$s0" -v b="$s1" -v h="$hz" 'BEGIN{printf "%.2f", (b-a)/h}')" \
      "\"postgres_cpu_s\":$(awk -v a="$p0" -v b="$p1" -v h="$hz" 'BEGIN{printf "%.2f", (b-a)/h}')" \
      "\"machine_busy\":$busy" \
      "\"peak_rss_kib\":$( ((pid > 0)) && hwm_kib "$pid" || echo 0)" "\"rustc_running\":$rustc"
    log "$backend $scenario run $r: $json"
  done
}

# One server process per scenario: its VmHWM is that scenario's peak.
server_scenario() { # BACKEND SCENARIO MODE PATH
  start_server
  wrk_run "$1" "$2" "$SERVER_PID" "$3" "$4"
  stop_server
}

api() { curl -fsS -H "apiKey: $API_KEY" -H 'Content-Type: application/json' "$@"; }

# ---- seeding -------------------------------------------------------------------
# bench/seed.py prints the SQL (copies of a server-made template identity and
# all its child rows; see its docstring); the database's own client runs it.
seed() { # APP_ID N TEMPLATE TAG
  if [[ $BACKEND == sqlite ]]; then
    python3 "$HERE/seed.py" sqlite "$DB_FILE" "$@" | sqlite3 -batch -bail "$DB_FILE" >/dev/null
  else
    python3 "$HERE/seed.py" postgres "$DB_URL" "$@" | psql -q -v ON_ERROR_STOP=1 "$DB_URL" >/dev/null
  fi
}

# ---- ceiling -----------------------------------------------------------------
CEILING_PID=
if [[ " $SCENARIOS " == *" ceiling "* ]]; then
  log "ceiling: bare actix-web on :$CEILING_PORT"
  BIND=127.0.0.1:$CEILING_PORT WORKERS=$KYC_WORKERS "$CEILING" &
  CEILING_PID=$!
  sleep 0.5
  IDS_FILE=/dev/null
  wrk_run machine ceiling_get "$CEILING_PID" static /ping
  kill "$CEILING_PID"; wait "$CEILING_PID" 2>/dev/null || true
  BIND=127.0.0.1:$CEILING_PORT WORKERS=$KYC_WORKERS "$CEILING" &
  CEILING_PID=$!
  sleep 0.5
  # POST /echo with the reference body: the ceiling for a JSON create.
  wrk_run machine ceiling_post "$CEILING_PID" post /echo
  kill "$CEILING_PID"; wait "$CEILING_PID" 2>/dev/null || true
  CEILING_PID=
fi

# ---- per backend ---------------------------------------------------------------
for BACKEND in $BACKENDS; do
  log "=== $BACKEND ==="
  case $BACKEND in
    sqlite)
      DB_FILE=$WORK/kyc-bench.db
      rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"
      DB_URL=sqlite://$DB_FILE
      sql() { sqlite3 -batch -noheader "$DB_FILE" "$1"; }
      ;;
    postgres)
      psql -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB"
      DB_URL=${PG_ADMIN_URL%/*}/$PG_DB
      sql() { psql -qAt "$DB_URL" -c "$1"; }
      ;;
    *) log "unknown backend $BACKEND"; exit 1 ;;
  esac
  export DATABASE_URL=$DB_URL
  "$BIN" migrate 2>>"$OUT/server-$BACKEND.log"
  start_server
  TEMPLATE=$(api -X POST "http://127.0.0.1:$PORT/identities" --data @"$HERE/reference_person.json" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
  stop_server
  APP_ID=$(KYC_LOG=warn "$BIN" apps list | python3 -c 'import json,sys; print([a["appId"] for a in json.load(sys.stdin) if a["name"]=="default"][0])')
  ALL_APP=$(KYC_LOG=warn "$BIN" apps create bench-all)
  ALL_APP_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["appId"])' "$ALL_APP")
  ALL_KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["apiKey"])' "$ALL_APP")
  KEY_HASH=$(sql "SELECT key_hash FROM api_keys WHERE app_id = '$APP_ID'")

  wait_idle >/dev/null
  log "$BACKEND: seeding $ROWS identities (+$ALL_ROWS for all=true)"
  t0=$(date +%s.%N)
  seed "$APP_ID" "$ROWS" "$TEMPLATE" a
  seed "$ALL_APP_ID" "$ALL_ROWS" "$TEMPLATE" b
  [[ $BACKEND == postgres ]] && psql -q "$DB_URL" -c "VACUUM ANALYZE"
  t1=$(date +%s.%N)
  SEED_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  record "$BACKEND" seed "\"rows\":$((ROWS + ALL_ROWS + 1))" "\"documents\":$((2 * (ROWS + ALL_ROWS + 1)))" "\"seconds\":$SEED_S"
  log "$BACKEND: seeded in ${SEED_S}s"

  IDS_FILE=$WORK/ids-$BACKEND.txt
  sql "SELECT id FROM identities WHERE app_id = '$APP_ID' ORDER BY random() LIMIT 100000" >"$IDS_FILE"
  MATCHES=$(sql "SELECT count(*) FROM identities WHERE app_id = '$APP_ID' AND deleted_at IS NULL AND email_normalized LIKE '%$LIKE_COMMON%'")
  DEEP_PAGE=$(((MATCHES + 29) / 30))
  # The unfiltered list's middle page: the deepest an OFFSET walk gets (the
  # server walks from the nearer end).
  MIDDLE_PAGE=$(((ROWS / 30 + 1) / 2))
  RARE=$(sed -n '1p' "$IDS_FILE")
  RARE_EMAIL=$(sql "SELECT email FROM identities WHERE id = '$RARE'")
  RARE_LIKE=${RARE_EMAIL%%@*}@
  enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
  LIST="/identities?filter%5Bemail%5D=like:$(enc "$LIKE_COMMON")&sort=-createdAt&page%5Bsize%5D=30"
  echo "{\"backend\":\"$BACKEND\",\"scenario\":\"params\",\"like_common\":\"$LIKE_COMMON\",\"matches\":$MATCHES,\"deep_page\":$DEEP_PAGE,\"rare_like\":\"$RARE_LIKE\",\"commit\":\"$COMMIT\"}" >>"$RESULTS"

  for S in $SCENARIOS; do
    case $S in
      ceiling) ;;
      create) server_scenario "$BACKEND" create post /identities ;;
      get) server_scenario "$BACKEND" get get "/identities/{id}" ;;
      list_first) server_scenario "$BACKEND" list_first static "$LIST" ;;
      list_deep) server_scenario "$BACKEND" list_deep static "$LIST&page%5Bnumber%5D=$DEEP_PAGE" ;;
      list_middle) server_scenario "$BACKEND" list_middle static "$LIST&page%5Bnumber%5D=$(((DEEP_PAGE + 1) / 2))" ;;
      list_page_middle) server_scenario "$BACKEND" list_page_middle static \
        "/identities?page%5Bsize%5D=30&page%5Bnumber%5D=$MIDDLE_PAGE" ;;
      list_cursor_middle | list_cursor_shallow)
        # The same page as list_page_middle (or page 2), reached by the
        # cursor that the page before it links to.
        if [[ $S == list_cursor_middle ]]; then before=$((MIDDLE_PAGE - 1)); else before=1; fi
        start_server
        link=$(api "http://127.0.0.1:$PORT/identities?page%5Bsize%5D=30&page%5Bnumber%5D=$before" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["links"]["next"])')
        wrk_run "$BACKEND" "$S" "$SERVER_PID" static "$link"
        stop_server
        ;;
      list_substring) server_scenario "$BACKEND" list_substring static \
        "/identities?filter%5Bemail%5D=like:$(enc "${LIKE_COMMON#@}")&sort=-createdAt&page%5Bsize%5D=30" ;;
      list_verifications) server_scenario "$BACKEND" list_verifications static "/verifications?page%5Bsize%5D=30" ;;
      list_verifications_pending) server_scenario "$BACKEND" list_verifications_pending static \
        "/verifications?filter%5Bstatus%5D=pending&page%5Bsize%5D=30" ;;
      list_unfiltered_first) server_scenario "$BACKEND" list_unfiltered_first static "/identities?page%5Bsize%5D=30" ;;
      list_substring_rare) server_scenario "$BACKEND" list_substring_rare static \
        "/identities?filter%5Bemail%5D=like:$(enc "${RARE_LIKE%@}")&sort=-createdAt&page%5Bsize%5D=30" ;;
      list_rare) server_scenario "$BACKEND" list_rare static \
        "/identities?filter%5Bemail%5D=like:$(enc "$RARE_LIKE")&sort=-createdAt&page%5Bsize%5D=30" ;;
      operations)
        if ((HAS_OPERATIONS)); then
          server_scenario "$BACKEND" operations get "/identities/{id}/operations"
        else
          record "$BACKEND" operations '"missing":true'
          log "$BACKEND operations: the route is not in $COMMIT; skipped"
        fi
        ;;
      all)
        # Sequential downloads of all=true over ALL_ROWS identities of the
        # second app: time per response and the server's peak RSS.
        wait_idle >/dev/null
        start_server
        base=$(hwm_kib "$SERVER_PID")
        for r in $(seq 1 "$ALL_RUNS"); do
          s0=$(cpu_ticks "$SERVER_PID")
          stats=$(curl -fsS -o "$WORK/all.json" -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}' \
            -H "apiKey: $ALL_KEY" "http://127.0.0.1:$PORT/identities?all=true")
          s1=$(cpu_ticks "$SERVER_PID")
          read -r code ttfb total size <<<"$stats"
          count=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["data"]), d["total"])' "$WORK/all.json")
          record "$BACKEND" all "\"run\":$r" "\"status\":$code" "\"ttfb_s\":$ttfb" "\"seconds\":$total" \
            "\"bytes\":$size" "\"rows\":${count% *}" "\"total\":${count#* }" \
            "\"server_cpu_s\":$(awk -v a="$s0" -v b="$s1" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}')" \
            "\"peak_rss_kib\":$(hwm_kib "$SERVER_PID")" "\"start_rss_kib\":$base"
          log "$BACKEND all run $r: $stats rows/total=$count rss=$(hwm_kib "$SERVER_PID")KiB"
        done
        stop_server
        ;;
      all_export)
        # The database's own export of the rows scenario `all` streams (the
        # second app's live identities, in the same order), as JSON: what
        # all=true is measured against.
        where="WHERE app_id = '$ALL_APP_ID' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC"
        export_runs all_export "SELECT * FROM identities $where" \
          "COPY (SELECT row_to_json(i) FROM identities i $where) TO STDOUT"
        ;;
      all_export_children)
        # The database's own export of everything scenario `all` answers
        # (bench/export-children.sh), SQLite as JSON (the sqlite3 shell),
        # PostgreSQL as COPY's text.
        select=$(children_export_select "$ALL_APP_ID")
        export_runs all_export_children "$select" "COPY ($select) TO STDOUT"
        ;;
      create_limit | get_limit)
        mode=${S%_limit}
        wait_idle >/dev/null
        if [[ $BACKEND == sqlite ]]; then
          for r in $(seq 1 "$REPEAT"); do
            m0=$(machine_busy)
            json=$("$SQLITE_LIMIT" "$mode" "$DB_FILE" "$KEY_HASH" "$TEMPLATE" "$CONNS" "$DURATION" "$IDS_FILE")
            m1=$(machine_busy)
            busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN{split(a,x," ");split(b,y," "); printf "%.2f", (y[1]-x[1])/(y[2]-x[2])}')
            record "$BACKEND" "$S" "\"run\":$r" "\"limit\":$json" "\"machine_busy\":$busy"
            log "$BACKEND $S run $r: $json"
          done
        else
          # The ids for get: a helper table numbered 1..K (pgbench picks a number).
          if [[ $mode == get ]]; then
            psql -q "$DB_URL" -c "DROP TABLE IF EXISTS bench_ids" \
              -c "CREATE TABLE bench_ids (n int PRIMARY KEY, id text NOT NULL)"
            awk '{print NR "\t" $0}' "$IDS_FILE" | psql -q "$DB_URL" -c "\\copy bench_ids FROM STDIN"
            psql -q "$DB_URL" -c "ANALYZE bench_ids"
          fi
          script=$WORK/pgbench-$mode.sql
          python3 "$HERE/pgbench_script.py" "$mode" "$DB_URL" "$KEY_HASH" "$APP_ID" "$TEMPLATE" "$(wc -l <"$IDS_FILE")" >"$script"
          for r in $(seq 1 "$REPEAT"); do
            p0=$(pg_ticks); m0=$(machine_busy)
            out=$(pgbench -n -M prepared -c "$CONNS" -j 2 -T "$DURATION" -r -f "$script" \
              --log --log-prefix="$WORK/pgblog-$mode" "$DB_URL" 2>&1) || log "pgbench exited non-zero; see $OUT/pgbench-$mode.txt"
            p1=$(pg_ticks); m1=$(machine_busy)
            echo "$out" >>"$OUT/pgbench-$mode.txt"
            tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
            failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
            # Per-transaction latencies from the log (column 3, in us).
            pct=$(cat "$WORK"/pgblog-"$mode".* | awk '{print $3}' | sort -n |
              awk '{a[NR]=$1} END{printf "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"tx\":%d", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, NR}')
            rm -f "$WORK"/pgblog-"$mode".*
            busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN{split(a,x," ");split(b,y," "); printf "%.2f", (y[1]-x[1])/(y[2]-x[2])}')
            record "$BACKEND" "$S" "\"run\":$r" \
              "\"limit\":{\"tps\":${tps:-0},\"errors\":${failed:-0},$pct}" "\"machine_busy\":$busy" \
              "\"postgres_cpu_s\":$(awk -v a="$p0" -v b="$p1" -v h="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/h}')"
            log "$BACKEND $S run $r: tps=$tps failed=${failed:-0} $pct"
          done
        fi
        ;;
      *) log "unknown scenario $S"; exit 1 ;;
    esac
  done
done

# ---- the table -----------------------------------------------------------------
{
  echo "kyc-api $COMMIT on $(nproc) cores; ROWS=$ROWS ALL_ROWS=$ALL_ROWS DURATION=${DURATION}s CONNS=$CONNS REPEAT=$REPEAT KYC_LOG=$KYC_LOG pool=$KYC_DB_POOL_SIZE"
  python3 "$HERE/table.py" "$RESULTS"
} | tee "$OUT/table.md"
log "results in $OUT"
