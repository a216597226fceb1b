#!/usr/bin/env bash
# Server CPU per message, engine at two commits, same harness (this checkout's), 3 runs each,
# alternating, a fresh engine and store per run.
# Usage: BEFORE=<worktree of the older commit, with node_modules> cpu-ab.sh SCENARIO RATE
set -u
sc=$1 rate=$2
root=$(git rev-parse --show-toplevel)
cd "$root"
for run in 1 2 3; do
  for which in before after; do
    dir=$([ $which = before ] && echo "${BEFORE:?set BEFORE}" || echo "$root")
    data=$(mktemp -d /tmp/ab-XXXX)
    port=$((42000 + RANDOM % 2000))
    (cd $dir && CHAT_PORT=$port CHAT_HOST=127.0.0.1 CHAT_STORE=sqlite:$data/chat.db CHAT_SEND_RATE=0 CHAT_SEND_BYTES_RATE=0 CHAT_ADDRESS_BYTES_RATE=0 CHAT_LOG_LEVEL=warn \
      exec taskset -c 0 node --import tsx src/cli.ts $([ $which = after ] && echo start) > $data/log 2>&1) &
    pid=$!
    for i in $(seq 1 100); do grep -q "listening" $data/log 2>/dev/null && break; sleep 0.2; done
    taskset -c 1 npm run -s bench -- $sc --rate $rate --duration 10 --warmup 2 --no-wait-quiet --url ws://127.0.0.1:$port/ws --pid $pid --json --out /tmp/ab-out/$sc-$which-$run > /tmp/ab-out-$sc-$which-$run.json 2>/tmp/ab-out-$sc-$which-$run.err
    python3 - "$sc" "$which" "$run" <<'PY'
import json,sys
sc,which,run=sys.argv[1:]
d=json.load(open(f"/tmp/ab-out-{sc}-{which}-{run}.json"))
r=d['runs'][0] if isinstance(d,dict) and 'runs' in d else (d[0] if isinstance(d,list) else d)
res=r['resources']; rate=r['achievedRate']
print(f"{sc} {which} run{run}: achieved {rate:.0f}/s server cpu {res['serverCpuAvg']:.1f}% -> {res['serverCpuAvg']*10000/max(rate,1):.1f} us/msg; ack p99 {r['latency']['ack']['p99']} ms; other {res['otherCpuAvg']:.0f}% steal {res['stealCpuAvg']}")
PY
    kill $pid; wait $pid 2>/dev/null; rm -rf $data
  done
done
