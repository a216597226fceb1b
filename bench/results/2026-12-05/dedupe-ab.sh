#!/usr/bin/env bash
# The persistence actor's cost per message, engine at two commits, 3 runs each, alternating:
# 1. `direct` (2,000 clients, 1,000 rooms of 2) at a fixed rate for 10 s after 2 s of warm-up, a
#    fresh engine and store per run, engine pinned to core 0 and this checkout's harness to core 1;
#    CPU (utime + stime from /proc/<pid>/task/*/stat, whole run including connects) of the front
#    thread (the main thread) and of the actor (the busiest other thread), per acked message;
# 2. the store alone (scripts/actor-write-cost.ts 100 100000): CPU and WAL pages per message.
# The group commit's batch grows as the actor slows (it takes what arrived during the previous
# commit), and a larger batch costs less per message: PACE=20 (CHAT_COMMIT_PACE_MS) fixes the
# batches at about rate x 20 ms on both sides, so the CPU figures compare the same work.
# Usage: BEFORE=<worktree of the older commit, with node_modules> [PACE=ms] [STORE_ALONE=0] dedupe-ab.sh [rate=8000]
set -u
rate=${1:-8000}
root=$(git rev-parse --show-toplevel)
out=$(mktemp -d /tmp/dedupe-ab-XXXX)
ticks() { for t in /proc/$1/task/*; do echo "$(basename "$t") $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null)"; done; }
cd "$root"
for run in 1 2 3; do
  for which in before after; do
    dir=$([ $which = before ] && echo "${BEFORE:?set BEFORE}" || echo "$root")
    data=$(mktemp -d /tmp/dedupe-ab-run-XXXX)
    port=$((42000 + RANDOM % 2000))
    (cd "$dir" && CHAT_PORT=$port CHAT_HOST=127.0.0.1 CHAT_STORE=sqlite:$data/chat.db CHAT_SEND_RATE=0 CHAT_SEND_BYTES_RATE=0 CHAT_ADDRESS_BYTES_RATE=0 CHAT_LOG_LEVEL=warn CHAT_COMMIT_PACE_MS=${PACE:-0} \
      exec taskset -c 0 node --import tsx src/cli.ts > "$data/log" 2>&1) &
    pid=$!
    for i in $(seq 1 100); do grep -q "listening" "$data/log" 2>/dev/null && break; sleep 0.2; done
    ticks $pid > "$data/t0"
    taskset -c 1 npm run -s bench -- direct --rate "$rate" --duration 10 --warmup 2 --no-wait-quiet --url ws://127.0.0.1:$port/ws --pid $pid --json --out "$out/$which-$run" > "$out/$which-$run.json" 2> "$out/$which-$run.err"
    ticks $pid > "$data/t1"
    python3 - "$which" "$run" "$out/$which-$run.json" "$data/t0" "$data/t1" "$pid" "$(getconf CLK_TCK)" <<'PY'
import json, sys
which, run, js, t0, t1, pid, hz = sys.argv[1:]
d = json.load(open(js))
r = d['runs'][0] if isinstance(d, dict) and 'runs' in d else (d[0] if isinstance(d, list) else d)
a = dict(l.split() for l in open(t0) if len(l.split()) == 2)
b = dict(l.split() for l in open(t1) if len(l.split()) == 2)
delta = {t: (int(b[t]) - int(a.get(t, 0))) / int(hz) for t in b}
front = delta.pop(pid)
actor = max(delta.values())
n = r['extra']['messagesAcked']
res = r['resources']
print(f"{which} run{run}: achieved {r['achievedRate']:.0f}/s acked {n} ack p99 {r['latency']['ack']['p99']:.0f} ms | front {front * 1e6 / n:.1f} us/msg actor {actor * 1e6 / n:.1f} us/msg | other processes avg {res['otherCpuAvg']:.0f}% | {r['correctness']['ok'] if 'correctness' in r and 'ok' in r['correctness'] else ''}", flush=True)
PY
    kill $pid; wait $pid 2>/dev/null; rm -rf "$data"
  done
done
[ "${STORE_ALONE:-1}" = 0 ] && exit 0
for run in 1 2 3; do
  for which in before after; do
    dir=$([ $which = before ] && echo "$BEFORE" || echo "$root")
    echo "store alone $which run$run: $(cd "$dir" && taskset -c 0 node --import tsx scripts/actor-write-cost.ts 100 100000)"
  done
done
