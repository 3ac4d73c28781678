/**
 * Summary statistics for reports: the mean of a metric across seeds (or trials) and its 95% confidence
 * interval from Student's t distribution. Pure functions over plain arrays.
 */
import { tQuantile975 } from "../store/StudentT.js"

/** A sample's mean with its 95% confidence interval; `lo`/`hi` are null when n < 2 (no spread to estimate). */
export interface Summary {
  readonly n: number
  readonly mean: number
  /** Sample standard deviation (n - 1 in the denominator); 0 when n < 2. */
  readonly sd: number
  readonly lo: number | null
  readonly hi: number | null
}

/** The interval's t quantile: the same function as the store's `summary` view, so `show` and `report` agree. */
export { tQuantile975 }

/** The finite values of a list (NaN, ±Infinity and nulls are dropped: a failed trial is no observation). */
export const finite = (values: ReadonlyArray<number | null | undefined>): Array<number> =>
  values.filter((v): v is number => typeof v === "number" && Number.isFinite(v))

/** The mean, as the first value plus the mean offset from it: exact for equal values, steadier for close ones. */
export const mean = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const first = values[0]!
  return first + values.reduce((a, v) => a + (v - first), 0) / values.length
}

/** Sample standard deviation (Bessel-corrected); 0 for fewer than two values. */
export const sampleSd = (values: ReadonlyArray<number>): number => {
  if (values.length < 2) return 0
  const m = mean(values)
  return Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (values.length - 1))
}

/** Mean and 95% t-interval mean ± t_{0.975, n-1} · sd / √n of the finite values; null when none. */
export const summarize = (values: ReadonlyArray<number | null | undefined>): Summary | null => {
  const xs = finite(values)
  if (xs.length === 0) return null
  const m = mean(xs)
  if (xs.length < 2) return { n: xs.length, mean: m, sd: 0, lo: null, hi: null }
  // Identical values summed in floating point leave a spread of ~1e-16: that is no spread.
  const raw = sampleSd(xs)
  const sd = raw <= 1e-12 * Math.max(1, Math.abs(m)) ? 0 : raw
  const half = tQuantile975(xs.length - 1) * sd / Math.sqrt(xs.length)
  return { n: xs.length, mean: m, sd, lo: m - half, hi: m + half }
}
