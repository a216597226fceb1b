#!/bin/bash
# The hot windows filling up on one engine that stays up: RUNS `direct` runs of 10 s at RATE
# (each run into 1,000 new rooms), then the engine's RSS and window bytes (GET /api/stats) and,
# after a full collection in every thread (POST /_test/gc, CHAT_TEST_HOOKS=1), what is live.
#   bench/results/2026-12-06/windows-full.sh RUNS RATE [store]     (REPO=<checkout> for another engine)
root=$(cd "$(dirname "$0")/../../.." && pwd)
runs=$1; rate=$2; store=${3:-sqlite}
d=$(mktemp -d); port=$((20000 + RANDOM % 10000))
[ "$store" = sqlite ] && st="sqlite:$d/bench.db" || st="$store"
cd $d
env CHAT_PORT=$port CHAT_STORE=$st CHAT_TEST_HOOKS=1 CHAT_SEND_RATE=0 CHAT_SEND_BYTES_RATE=0 CHAT_ADDRESS_BYTES_RATE=0 CHAT_JOIN_RATE=0 CHAT_LOG_LEVEL=warn taskset -c 0 node --import file://$root/node_modules/tsx/dist/loader.mjs ${REPO:-$root}/src/cli.ts >"$d/log" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q listening "$d/log" 2>/dev/null && break; sleep 0.2; done
echo "start: $(curl -s -X POST http://127.0.0.1:$port/_test/gc)"
for r in $(seq $runs); do
  cd $root && out=$(npm run -s bench -- direct --rate $rate --duration 10 --warmup 2 --url ws://127.0.0.1:$port/ws --pid $pid --no-wait-quiet 2>&1)
  st=$(curl -s http://127.0.0.1:$port/api/stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print("rss %d MB windowBytes %d MB rooms %d" % (d["rssBytes"]>>20, d["windowBytes"]>>20, d["rooms"]))')
  echo "run $r: $(echo "$out" | grep -c 'correct   OK') ok; before gc: $st; after: $(curl -s -X POST http://127.0.0.1:$port/_test/gc | python3 -c 'import json,sys; d=json.load(sys.stdin); print("rss %d MB heapUsed %d MB front %d MB" % (d["rss"]>>20, d["heapUsed"]>>20, d["threads"][0]["heapUsedAfter"]>>20))')"
done
curl -s http://127.0.0.1:$port/api/stats | head -c 1500; echo
kill $pid; wait $pid 2>/dev/null; rm -rf $d
