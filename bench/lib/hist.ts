// HDR histograms in microseconds (hdr-histogram-js, pure-JS backend) and their summaries.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** 1 us .. 120 s at 3 significant digits: enough for a stalled server without clamping. */
export function newHist(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
}

export interface LatencySummary {
  count: number;
  p50: number; p90: number; p95: number; p99: number; p999: number; max: number; mean: number;
}

const ms = (us: number): number => Math.round(us) / 1000;

/** Percentiles in milliseconds (3 decimals). */
export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50: 0, p90: 0, p95: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p95: ms(h.getValueAtPercentile(95)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** The percentile curve (x = percentile, y = ms) for the report chart, on a log-spaced percentile axis. */
export function percentileCurve(h: Histogram): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  if (h.totalCount === 0) return out;
  for (const nines of [0, 0.3, 0.6, 1, 1.3, 1.6, 2, 2.3, 2.6, 3, 3.3, 3.6, 4, 4.5, 5]) {
    const p = 100 * (1 - Math.pow(10, -nines));
    out.push([p, ms(h.getValueAtPercentile(p))]);
  }
  out.push([100, ms(h.maxValue)]);
  return out;
}

/** Clamp-and-record: values outside the range are clamped instead of throwing mid-run. */
export function record(h: Histogram, us: number): void {
  h.recordValue(us < 1 ? 1 : us > 120_000_000 ? 120_000_000 : us);
}
