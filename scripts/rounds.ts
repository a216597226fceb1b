// The micro-benchmarks' measure: nanoseconds per operation over several rounds, the median quoted
// with every round beside it (this box is shared: the spread says how far to trust the median).

/** `count` rounds of `ops` operations each (`run` does all of one round); ns per operation. */
export function nsPerOpRounds(count: number, ops: number, run: () => void): { median: number; rounds: string } {
  const xs: number[] = [];
  for (let r = 0; r < count; r++) {
    const t0 = process.hrtime.bigint();
    run();
    xs.push(Number(process.hrtime.bigint() - t0) / ops);
  }
  xs.sort((a, b) => a - b);
  return { median: xs[(count - 1) >> 1], rounds: xs.map((x) => x.toFixed(0)).join(' ') };
}
