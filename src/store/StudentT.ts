/**
 * The 97.5% quantile of Student's t distribution, t_{0.975}(df), the one factor of every 95% interval
 * Distillery prints: the `summary` view's `ci95` (as SQL, `t975Sql`) and the report's bars
 * (`report/Stats.ts`) come from this module, so `show` and `report` agree for every df.
 *
 * Up to `EXACT_DF` degrees of freedom the quantile is computed by inverting the t distribution
 * function (a regularized incomplete beta, Numerical Recipes 6.4) by bisection; beyond, Fisher's
 * expansion around the normal quantile (Abramowitz & Stegun 26.7.5, four terms) is within 1e-10 of
 * it and closer than the inversion, whose log-gammas lose digits for large df.
 */

/** Degrees of freedom up to which the quantile is the inverted distribution function. */
export const EXACT_DF = 100

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: ~15 significant digits). */
const logGamma = (x: number): number => {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7
  ]
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x)
  const y = x - 1
  let sum = c[0]!
  for (let i = 1; i < c.length; i++) sum += c[i]! / (y + i)
  const t = y + 7.5
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(sum)
}

/** The continued fraction of the incomplete beta function (modified Lentz), for x < (a + 1) / (a + b + 2). */
const betaFraction = (a: number, b: number, x: number): number => {
  const tiny = 1e-300
  const clamp = (v: number) => (Math.abs(v) < tiny ? tiny : v)
  let c = 1
  let d = 1 / clamp(1 - (a + b) * x / (a + 1))
  let h = d
  for (let m = 1; m <= 10_000; m++) {
    const even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
    d = 1 / clamp(1 + even * d)
    c = clamp(1 + even / c)
    h *= d * c
    const odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
    d = 1 / clamp(1 + odd * d)
    c = clamp(1 + odd / c)
    h *= d * c
    if (Math.abs(d * c - 1) < 1e-16) break
  }
  return h
}

/** The regularized incomplete beta function I_x(a, b). */
const regularizedBeta = (a: number, b: number, x: number): number => {
  if (x <= 0) return 0
  if (x >= 1) return 1
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x))
  return x < (a + 1) / (a + b + 2) ? front * betaFraction(a, b, x) / a : 1 - front * betaFraction(b, a, 1 - x) / b
}

/** P(T > t) for t >= 0 and T ~ Student's t with `df` degrees of freedom. */
const upperTail = (t: number, df: number): number => 0.5 * regularizedBeta(df / 2, 0.5, df / (df + t * t))

/** The t with P(T > t) = `tail`, by bisection to the last few bits. */
const invertUpperTail = (tail: number, df: number): number => {
  let lo = 0
  let hi = 1
  while (upperTail(hi, df) > tail) hi *= 2
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = (lo + hi) / 2
    if (upperTail(mid, df) > tail) lo = mid
    else hi = mid
  }
  return (lo + hi) / 2
}

const Z975 = 1.959963984540054

/** Fisher's expansion t ≈ z + g1/df + g2/df² + g3/df³ + g4/df⁴ at z = z_{0.975}: [z, g1, g2, g3, g4]. */
export const SERIES_975: ReadonlyArray<number> = (() => {
  const z = Z975
  return [
    z,
    (z ** 3 + z) / 4,
    (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96,
    (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384,
    (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
  ]
})()

let exact: ReadonlyArray<number> | undefined

/** t_{0.975}(df) for df = 1..EXACT_DF (index df - 1), computed on first use (about 10 ms). */
export const exact975 = (): ReadonlyArray<number> =>
  (exact ??= Array.from({ length: EXACT_DF }, (_, i) => invertUpperTail(0.025, i + 1)))

/**
 * t_{0.975}(df): the two-sided 95% quantile of Student's t with `df` degrees of freedom (a fraction is
 * rounded down); NaN below 1. 12.706 at df 1, 2.042 at 30, 1.980 at 120, towards 1.960.
 */
export const tQuantile975 = (df: number): number => {
  if (!(df >= 1)) return Number.NaN
  const whole = Math.floor(df)
  if (whole <= EXACT_DF) return exact975()[whole - 1]!
  return SERIES_975.reduce((t, g, k) => t + g / whole ** k, 0)
}
