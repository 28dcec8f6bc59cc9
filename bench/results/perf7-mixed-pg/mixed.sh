#!/usr/bin/env bash
# mixed.sh BIN CONNS: GET load (wrk) for 12 s on PostgreSQL with all=true downloads looping beside it
set -u
BIN=$1; CONNS=$2; PORT=18097; URL=postgres://postgres@127.0.0.1:5432/kyc_bench; KEY=$(cat /tmp/all-download-key-postgres--bench-all)
DATABASE_URL=$URL KYC_BIND=127.0.0.1:$PORT KYC_LOG=warn KYC_DB_POOL_SIZE=10 "$BIN" serve >/tmp/mixed-server.log 2>&1 &
PID=$!
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
cd /work/main
env BENCH_MODE=get BENCH_PATH='/identities/{id}' BENCH_KEY=$KEY BENCH_IDS=/tmp/pg-ids.txt wrk -t2 -c$CONNS -d3s -s bench/lua/bench.lua http://127.0.0.1:$PORT >/dev/null 2>&1
( end=$((SECONDS+12)); while ((SECONDS < end)); do curl -fsS -o /dev/null -w '%{time_total}\n' -H "apiKey: $KEY" "http://127.0.0.1:$PORT/identities?all=true"; done ) > /tmp/mixed-streams.txt &
SP=$!
env BENCH_MODE=get BENCH_PATH='/identities/{id}' BENCH_KEY=$KEY BENCH_IDS=/tmp/pg-ids.txt BENCH_RUN=$(date +%s%N) wrk -t2 -c$CONNS -d12s --latency -s bench/lua/bench.lua http://127.0.0.1:$PORT > /tmp/mixed-wrk.txt 2>&1
wait $SP
kill $PID; wait $PID 2>/dev/null
echo "$(basename $BIN) conns=$CONNS: $(grep 'Requests/sec' /tmp/mixed-wrk.txt | awk '{print $2}') req/s, p50 $(grep ' 50%' /tmp/mixed-wrk.txt | awk '{print $2}'), p99 $(grep ' 99%' /tmp/mixed-wrk.txt | awk '{print $2}'), streams: $(tr '\n' ' ' < /tmp/mixed-streams.txt)"
