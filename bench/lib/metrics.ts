// Reading a server's Prometheus text (/metrics): the engine's counters a scenario reports.

/** The /metrics text of the server at `httpBase` (http://host:port). */
export async function fetchMetrics(httpBase: string): Promise<string> {
  return (await fetch(`${httpBase}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
}

/** The value of the sample `name` (with its labels, e.g. `x{code="a"}`), or NaN if absent. */
export function metricValue(text: string, name: string): number {
  for (const line of text.split('\n')) if (line.startsWith(name + ' ')) return Number(line.slice(name.length + 1));
  return NaN;
}

/** Every sample of `name` with one label `label`: label value -> sample value. */
export function metricByLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const prefix = `${name}{${label}="`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const end = line.indexOf('"}', prefix.length);
    if (end > 0) out[line.slice(prefix.length, end)] = Number(line.slice(end + 3));
  }
  return out;
}
