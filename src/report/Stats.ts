/**
 * Summary statistics for reports: the mean of a metric across seeds (or trials) and its 95% confidence
 * interval from Student's t distribution. Pure functions over plain arrays.
 */

/** A sample's mean with its 95% confidence interval; `lo`/`hi` are null when n < 2 (no spread to estimate). */
export interface Summary {
  readonly n: number
  readonly mean: number
  /** Sample standard deviation (n - 1 in the denominator); 0 when n < 2. */
  readonly sd: number
  readonly lo: number | null
  readonly hi: number | null
}

// t_{0.975, df} for df = 1..30, from the standard table.
const T975: ReadonlyArray<number> = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
  2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086,
  2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042
]

const Z975 = 1.959963984540054

/**
 * The two-sided 95% quantile of Student's t with `df` degrees of freedom: the table up to 30, then the
 * Cornish-Fisher expansion around the normal quantile (within 1e-4 of the exact value past 30).
 */
export const tQuantile975 = (df: number): number => {
  if (!(df >= 1)) return Number.NaN
  const whole = Math.floor(df)
  if (whole <= 30) return T975[whole - 1]!
  const z = Z975
  return z + (z ** 3 + z) / (4 * whole) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * whole ** 2)
}

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
