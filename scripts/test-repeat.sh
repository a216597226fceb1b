#!/usr/bin/env bash
# Is the suite green every time? Clone this checkout's HEAD into a fresh folder, install as a
# newcomer does (npm ci), then run the test command N times and print one line per run (exit
# code, seconds) and a summary; exits 1 if any run failed. See docs/testing.md.
#
#   scripts/test-repeat.sh                  # 5 x `npm test`, as a newcomer (no CI=true)
#   scripts/test-repeat.sh --ci             # 5 x `bash .ci/run` (CI=true, then the crash cycles)
#   scripts/test-repeat.sh --burn           # the same with another process burning one core
#   scripts/test-repeat.sh --runs 3 --keep  # keep the clone (its path is printed)
set -euo pipefail

runs=5 ci=0 burn=0 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --ci) ci=1; shift ;;
    --burn) burn=1; shift ;;
    --keep) keep=1; shift ;;
    *) echo "unknown option $1 (--runs N, --ci, --burn, --keep)" >&2; exit 2 ;;
  esac
done

src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/uchat-repeat-XXXXXX)"
burner=""
cleanup() {
  if [ -n "$burner" ]; then kill "$burner" 2>/dev/null || true; fi
  if [ "$keep" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

git clone --quiet "$src" "$work/uchat"
cd "$work/uchat"
echo "commit $(git rev-parse --short HEAD), node $(node --version), $(nproc) cores; clone in $work/uchat"
if [ "$ci" = 0 ]; then npm ci --no-audit --no-fund >/dev/null; fi

if [ "$burn" = 1 ]; then
  node -e 'for (;;) {}' &
  burner=$!
  echo "burning one core (pid $burner)"
fi

failed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if [ "$ci" = 1 ]; then cmd=(bash .ci/run); else cmd=(npm test); fi
  if "${cmd[@]}" >"$work/run-$i.log" 2>&1; then rc=0; else rc=$?; fi
  secs=$(( $(date +%s) - start ))
  echo "run $i/$runs: exit $rc, ${secs} s$([ "$rc" = 0 ] || echo "  (log: $work/run-$i.log)")"
  if [ "$rc" != 0 ]; then failed=$((failed + 1)); keep=1; grep -E "FAIL|✗|×" "$work/run-$i.log" | head -20 || true; fi
done
echo "$((runs - failed))/$runs runs passed ($([ "$ci" = 1 ] && echo '.ci/run' || echo 'npm test')$([ "$burn" = 1 ] && echo ', one core burnt'))"
[ "$failed" = 0 ]
