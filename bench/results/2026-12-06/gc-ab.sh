#!/bin/bash
# V8's default collector against `node --single-threaded-gc`, the engine pinned to one core, at a
# fixed rate, alternating; run from the repo root:
#   bench/results/2026-12-06/gc-ab.sh RATE ROUNDS [SCENARIO=direct] [SERVER=engine|ceiling]
# Each run: the engine started by hand on a fresh SQLite store (or the raw-uWS ceiling), pinned to
# core 0, send limits off; `npm run bench -- SCENARIO --rate RATE --url ... --pid ...` (generator
# on core 1) for 2+12 s; 6 s
# in, each thread's user+system ticks (/proc/PID/task/*/stat) over 5 s. Prints ack p50/p99/p99.9,
# the bench's server CPU, the front thread (the busiest), the actor (the next) and the other
# threads together (V8's helpers, readers, SQLite's checkpointer), in % of one core.
rate=$1; rounds=$2; scenario=${3:-direct}; server=${4:-engine}
entry=src/cli.ts; [ "$server" = ceiling ] && entry=bench/peers/ceiling.ts
sample() { # pid seconds -> "tid ticks" per thread over the interval
  local pid=$1 s=$2; declare -A t0
  for t in /proc/$pid/task/*; do read -ra f < "$t/stat"; t0[${t##*/}]=$(( f[13] + f[14] )); done
  sleep "$s"
  for t in /proc/$pid/task/*; do read -ra f < "$t/stat"; echo "${t##*/} $(( f[13] + f[14] - ${t0[${t##*/}]:-0} ))"; done
}
for r in $(seq "$rounds"); do for gc in default --single-threaded-gc; do
  d=$(mktemp -d); port=$((20000 + RANDOM % 10000)); flags=(); [ "$gc" != default ] && flags=("$gc")
  env CHAT_PORT=$port CHAT_STORE=sqlite:$d/bench.db CHAT_SEND_RATE=0 CHAT_SEND_BYTES_RATE=0 CHAT_ADDRESS_BYTES_RATE=0 CHAT_JOIN_RATE=0 CHAT_LOG_LEVEL=error taskset -c 0 node "${flags[@]}" --import tsx $entry >"$d/log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do grep -q listening "$d/log" 2>/dev/null && break; sleep 0.2; done
  (sleep 6; sample $pid 5 > "$d/threads") & sp=$!
  out=$(npm run -s bench -- $scenario --rate "$rate" --duration 12 --warmup 2 --url ws://127.0.0.1:$port/ws --pid $pid --no-wait-quiet 2>&1)
  wait $sp
  th=$(sort -k2 -n -r "$d/threads" | awk '{a[NR]=$2; s+=$2} END {printf "front %.1f%% actor %.1f%% others %.1f%%", a[1]/5, a[2]/5, (s-a[1]-a[2])/5}')
  kill -TERM $pid; wait $pid 2>/dev/null; rm -rf "$d"
  echo "round $r $scenario $server $gc: $(echo "$out" | grep '^  ack ' | awk '{print "ack p50 "$3" p99 "$7" p99.9 "$9" ms"}'), server $(echo "$out" | grep '^  server ' | awk '{print $4}'), $th, steal max $(echo "$out" | grep '^  box ' | grep -o 'steal avg [0-9]*% max [0-9]*%' | awk '{print $5}'), other processes $(echo "$out" | grep '^  box ' | awk '{print $5}'), $(echo "$out" | grep -c 'correct   OK') correct"
done; done
