/** Summary statistics of measured samples. */

/** The q-quantile (0..1) with linear interpolation between order statistics (type 7). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] ?? Number.NaN;
  const b = sorted[hi] ?? Number.NaN;
  return a + (b - a) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Root mean square. */
export function rms(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  return Math.sqrt(values.reduce((sum, v) => sum + v * v, 0) / values.length);
}

/** `12,345` */
export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a";
}

/** A fraction as a percentage with `digits` decimals: 0.00812 → `0.81%`. */
export function fmtPct(fraction: number, digits = 2): string {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(digits)}%` : "n/a";
}

/** 10^k as `10^k` when n is a power of ten, else with thousands separators. */
export function fmtCardinality(n: number): string {
  const k = Math.log10(n);
  return Number.isInteger(k) && k >= 3 ? `10^${k}` : fmtInt(n);
}

/** Bytes in B / KB / MB / GB / TB (powers of 1024). */
export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "n/a";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  if (bytes < 1024 ** 4) return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
  return `${(bytes / 1024 ** 4).toFixed(2)} TB`;
}
