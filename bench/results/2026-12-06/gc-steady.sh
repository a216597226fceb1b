#!/bin/bash
# Garbage collection per message in steady state, by thread, at a fixed `direct` rate, two or
# more checkouts alternating.
#   bench/results/2026-12-06/gc-steady.sh RATE ROUNDS CHECKOUT_DIR...
# Each run: the engine of CHECKOUT_DIR on a fresh SQLite store, pinned to core 0 with
# `node --single-threaded-gc --trace-gc-nvp`, send limits off; `npm run bench -- direct --rate
# RATE` (generator on core 1) for 2+14 s. Counted: the collections logged between 8 s and 14 s
# of the engine's life (the load's steady state, after start-up, connects and warm-up), per
# isolate (the first is the front thread, the busiest worker the actor), divided by the messages
# offered in those 6 s. `promotion_rate` is V8's: of what survived the scavenge before, the share
# this one promoted (averaged over the scavenges). The engine's whole CPU over 5 s of the run too.
# EXTRA_ENV="NAME=value ..." is added to the engine's environment (a setting to compare).
rate=$1; rounds=$2; shift 2
bench=$(cd "$(dirname "$0")/../../.." && pwd)
for r in $(seq "$rounds"); do for repo in "$@"; do
  d=$(mktemp -d); port=$((20000 + RANDOM % 10000))
  (cd "$repo" && exec env CHAT_PORT=$port CHAT_STORE=sqlite:$d/bench.db CHAT_SEND_RATE=0 CHAT_SEND_BYTES_RATE=0 CHAT_ADDRESS_BYTES_RATE=0 CHAT_JOIN_RATE=0 CHAT_LOG_LEVEL=warn $EXTRA_ENV taskset -c 0 node --single-threaded-gc --trace-gc-nvp --import tsx src/cli.ts >"$d/log" 2>&1) &
  pid=$!
  for _ in $(seq 50); do grep -q listening "$d/log" 2>/dev/null && break; sleep 0.2; done
  (sleep 8; t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 5; t1=$(awk '{print $14+$15}' /proc/$pid/stat); echo $(( t1 - t0 )) > "$d/cpu") & sp=$!
  out=$(cd "$bench" && npm run -s bench -- direct --rate "$rate" --duration 14 --warmup 2 --url ws://127.0.0.1:$port/ws --pid $pid --no-wait-quiet 2>&1)
  wait $sp
  kill -TERM $pid; wait $pid 2>/dev/null
  echo "round $r $(cd "$repo" && git log --oneline -1 | cut -c1-7)$(cd "$repo" && git diff --quiet HEAD || echo '+changes')${EXTRA_ENV:+ [$EXTRA_ENV]}: cpu $(awk '{printf "%.1f%%", $1/5}' "$d/cpu"), $(echo "$out" | grep '^  ack ' | awk '{print "ack p50 "$3" p99 "$7" ms"}'), $(echo "$out" | grep -c 'correct   OK') correct"
  awk -v M=$((rate * 6)) '/gc=/ && !(($1) in seen) { seen[$1] = 1; order[++k] = $1 }
    /gc=/ { t = $2 + 0; if (t < 8000 || t > 14000) next; iso = $1; delete v; for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["gc"] == "s") { n[iso]++; p[iso] += v["pause"]; s[iso] += v["new_space_survived"]; pr[iso] += v["promoted"]; rate_[iso] += v["promotion_rate"] } else { mj[iso]++; mp[iso] += v["pause"] } }
    END { for (j = 1; j <= k; j++) { x = order[j]; if (j == 1) name = "front"; else if (n[x] + mj[x] > best) { best = n[x] + mj[x]; actor = x } }
      for (j = 1; j <= k; j++) { x = order[j]; if (j != 1 && x != actor) continue; printf "  %s: %d scavenges %.0f ms (promotion_rate %.0f%%), %d full %.0f ms; per message: survived %.0f B, promoted %.0f B\n", (j == 1 ? "front" : "actor"), n[x], p[x], (n[x] ? rate_[x] / n[x] : 0), mj[x], mp[x], s[x] / M, pr[x] / M } }' "$d/log"
  rm -rf "$d"
done; done
