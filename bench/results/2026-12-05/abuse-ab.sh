#!/usr/bin/env bash
# The abuse scenario against two checkouts, alternating, each with its own harness and a fresh
# engine and store per run: BEFORE=<worktree of the older commit, with node_modules> AFTER=<this
# checkout> abuse-ab.sh FLOODS RUNS [bench flags]   (FLOODS '' = every flood; else BENCH_FLOODS)
set -u
floods=$1; runs=$2; shift 2
for run in $(seq 1 "$runs"); do
  for which in before after; do
    dir=$([ $which = before ] && echo "${BEFORE:?set BEFORE}" || echo "${AFTER:?set AFTER}")
    out=/tmp/abuse-ab/$which-${floods:-all}-$run
    mkdir -p "$out"
    (cd "$dir" && BENCH_FLOODS=$floods npm run -s bench -- abuse --no-wait-quiet --json --out "$out" "$@" > "$out/result.json" 2> "$out/err.txt")
    python3 - "$out/result.json" $which "$run" "$floods" <<'PY'
import json,sys
p,which,run,fl=sys.argv[1:]
d=json.load(open(p)); r=d['runs'][0] if 'runs' in d else d
print(f"{fl or 'all'} {which} run{run}: ack p99 {r['latency']['ack']['p99']} ms, delivery p99 {r['latency']['delivery']['p99']} ms, RSS {r['resources']['serverRssMaxMb']} MB, server cpu {r['resources']['serverCpuAvg']:.0f}%, steal {r['resources'].get('stealCpuAvg')}: {r['verdict'][:80]}")
PY
  done
done
