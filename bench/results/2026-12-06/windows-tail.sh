#!/bin/bash
# bench/results/2026-12-06/windows-tail.sh FILLRUNS FILLRATE RATE MEASURED: one engine (REPO), FILLRUNS direct runs at FILLRATE into new rooms
# (windows fill to their cap), then MEASURED runs at RATE: ack p50/p99/p99.9, server CPU and peak RSS.
root=$(cd "$(dirname "$0")/../../.." && pwd)
fill=$1; frate=$2; rate=$3; meas=$4
d=$(mktemp -d); port=$((20000 + RANDOM % 10000))
cd $d
env CHAT_PORT=$port CHAT_STORE=sqlite:$d/bench.db CHAT_SEND_RATE=0 CHAT_SEND_BYTES_RATE=0 CHAT_ADDRESS_BYTES_RATE=0 CHAT_JOIN_RATE=0 CHAT_LOG_LEVEL=warn taskset -c 0 node --import file://$root/node_modules/tsx/dist/loader.mjs ${REPO:-$root}/src/cli.ts >"$d/log" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q listening "$d/log" 2>/dev/null && break; sleep 0.2; done
for r in $(seq $fill); do cd $root && npm run -s bench -- direct --rate $frate --duration 10 --warmup 2 --url ws://127.0.0.1:$port/ws --pid $pid --no-wait-quiet >/dev/null 2>&1; done
wb=$(curl -s http://127.0.0.1:$port/api/stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print("windowBytes %d MB rooms %d rss %d MB" % (d["windowBytes"]>>20, d["rooms"], d["rssBytes"]>>20))')
for r in $(seq $meas); do
  out=$(cd $root && npm run -s bench -- direct --rate $rate --duration 12 --warmup 2 --url ws://127.0.0.1:$port/ws --pid $pid --no-wait-quiet 2>&1)
  echo "$(basename ${REPO:-main}) measured $r @ $rate after fill ($wb): $(echo "$out" | grep '^  ack ' | awk '{print "ack p50 "$3" p99 "$7" p99.9 "$9}') ms, server $(echo "$out" | grep '^  server ' | awk '{print $4, "rss", $8, $9}'), $(echo "$out" | grep -c 'correct   OK') correct"
done
kill $pid; wait $pid 2>/dev/null; rm -rf $d
