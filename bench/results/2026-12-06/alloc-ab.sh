#!/bin/bash
# Heap allocation and garbage collection per message, by thread, at a fixed `direct` rate, two or
# more checkouts alternating.
#   bench/results/2026-12-06/alloc-ab.sh RATE ROUNDS CHECKOUT_DIR...
# Each run: the engine of CHECKOUT_DIR started by hand on a fresh SQLite store, pinned to core 0,
# send limits off, with `node --trace-gc-nvp` (one line per collection, each isolate named by its
# address); `npm run bench -- direct --rate RATE --url ... --pid ...` (generator on core 1) for
# 2+12 s. Per isolate with more than 15 scavenges (the front thread and the persistence actor):
# scavenges, their pauses, and V8's own counts of bytes allocated and bytes that survived a
# scavenge, divided by the messages acked. The log covers start-up and warm-up too, so compare
# runs of the same rate and length only. The engine's CPU over 5 s of the run is printed too
# (tracing costs a little of it).
rate=$1; rounds=$2; shift 2
bench=$(cd "$(dirname "$0")/../../.." && pwd)
for r in $(seq "$rounds"); do for repo in "$@"; do
  d=$(mktemp -d); port=$((20000 + RANDOM % 10000))
  (cd "$repo" && exec env CHAT_PORT=$port CHAT_STORE=sqlite:$d/bench.db CHAT_SEND_RATE=0 CHAT_SEND_BYTES_RATE=0 CHAT_ADDRESS_BYTES_RATE=0 CHAT_JOIN_RATE=0 CHAT_LOG_LEVEL=warn taskset -c 0 node --trace-gc-nvp --import tsx src/cli.ts >"$d/log" 2>&1) &
  pid=$!
  for _ in $(seq 50); do grep -q listening "$d/log" 2>/dev/null && break; sleep 0.2; done
  (sleep 6; t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 5; t1=$(awk '{print $14+$15}' /proc/$pid/stat); echo $(( t1 - t0 )) > "$d/cpu") & sp=$!
  out=$(cd "$bench" && npm run -s bench -- direct --rate "$rate" --duration 12 --warmup 2 --url ws://127.0.0.1:$port/ws --pid $pid --no-wait-quiet 2>&1)
  wait $sp
  msgs=$(echo "$out" | grep '^  ack ' | grep -o 'n=[0-9,]*' | tr -d 'n=,')
  kill -TERM $pid; wait $pid 2>/dev/null
  echo "round $r $(cd "$repo" && git log --oneline -1 | cut -c1-7)$(cd "$repo" && git diff --quiet HEAD || echo '+changes'): cpu $(awk '{printf "%.1f%%", $1/5}' "$d/cpu"), $(echo "$out" | grep '^  ack ' | awk '{print "ack p50 "$3" p99 "$7" ms"}'), $msgs acked, $(echo "$out" | grep -c 'correct   OK') correct"
  # The front thread's isolate is the first to collect (before any worker exists); a worker with
  # more than 15 scavenges is the actor (the readers collect a few times).
  awk -v M="$msgs" '/gc=/ && !(($1) in seen) { seen[$1] = 1; order[++k] = $1 }
    /gc=s/ { iso=$1; for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } n[iso]++; p[iso] += v["pause"]; s[iso] += v["new_space_survived"]; a[iso] += v["allocated"] }
    END { for (j = 1; j <= k; j++) { x = order[j]; if (j == 1 || n[x] > 15) printf "  %s: %d scavenges, %.0f ms paused, %.0f B/msg allocated, %.0f B/msg survived a scavenge\n", (j == 1 ? "front" : "actor"), n[x], p[x], a[x] / M, s[x] / M } }' "$d/log"
  rm -rf "$d"
done; done
