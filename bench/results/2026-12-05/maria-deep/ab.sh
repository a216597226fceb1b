#!/usr/bin/env bash
# Issue #19 on MariaDB: `direct --find-max --nodes 1`, on a database prefilled with 10 million
# messages and on an empty one, back to back, `rounds` times; monitor.mts runs beside each (its
# probe adds 10 tiny commits a second to MariaDB, the same on both sides). Raw output here:
# fm-<10m|empty>-<round>.txt (the bench's report), fm-...-<round>/ (--out), fm-...-<round>.monitor.txt,
# in OUT (default: this folder).
# Usage: bench/results/2026-12-05/maria-deep/ab.sh [rounds=2] [OUT]
set -u
root=$(git rev-parse --show-toplevel)
here=$root/bench/results/2026-12-05/maria-deep
out=$(realpath -m "${2:-$here}")
mkdir -p "$out"
cd "$root"
for round in $(seq 1 "${1:-2}"); do
  for which in 10m empty; do
    MARIADB_PID=$(pgrep -x mariadbd) node --import tsx "$here/monitor.mts" 1200 > "$out/fm-$which-$round.monitor.txt" 2>&1 &
    mon=$!
    prefill=(); [ "$which" = 10m ] && prefill=(--prefill 10000000)
    npm run -s bench -- direct --find-max --nodes 1 "${prefill[@]}" --out "$out/fm-$which-$round" > "$out/fm-$which-$round.txt" 2>&1
    kill "$mon"; wait "$mon" 2>/dev/null
  done
done
