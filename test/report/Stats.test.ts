/**
 * Means and 95% confidence intervals, checked against values worked out by hand and Student's t table.
 */
import { assert, describe, it } from "@effect/vitest"
import { finite, mean, sampleSd, summarize, tQuantile975 } from "../../src/report/Stats.js"
import { tQuantile975 as storeQuantile } from "../../src/store/StudentT.js"

describe("Stats", () => {
  it("tQuantile975 is the store's t quantile: the t table's values, and towards the normal quantile", () => {
    assert.strictEqual(tQuantile975, storeQuantile)
    for (const [df, t] of [[1, 12.706], [2, 4.303], [30, 2.042], [40, 2.021], [120, 1.98]] as const) {
      assert.approximately(tQuantile975(df), t, 5e-4)
    }
    assert.approximately(tQuantile975(1e6), 1.96, 1e-3)
    assert.isNaN(tQuantile975(0))
  })

  it("mean and sample standard deviation", () => {
    assert.strictEqual(mean([1, 2, 3, 4]), 2.5)
    assert.approximately(sampleSd([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7), 1e-12)
    assert.strictEqual(sampleSd([3]), 0)
    assert.deepStrictEqual(finite([1, null, Number.NaN, undefined, Number.POSITIVE_INFINITY, 2]), [1, 2])
  })

  it("summarize gives mean ± t * sd / sqrt(n)", () => {
    // 0.90, 0.92, 0.94: mean 0.92, sd 0.02, half-width t_{0.975}(2) * 0.02 / sqrt(3), t_{0.975}(2) = 4.3027.
    const s = summarize([0.9, 0.92, 0.94])!
    const half = 4.302652729749464 * 0.02 / Math.sqrt(3)
    assert.strictEqual(s.n, 3)
    assert.approximately(s.mean, 0.92, 1e-12)
    assert.approximately(s.sd, 0.02, 1e-12)
    assert.approximately(s.lo!, 0.92 - half, 1e-12)
    assert.approximately(s.hi!, 0.92 + half, 1e-12)
  })

  it("one value has no interval, no values no summary, failed trials are skipped", () => {
    assert.deepStrictEqual(summarize([0.5]), { n: 1, mean: 0.5, sd: 0, lo: null, hi: null })
    assert.isNull(summarize([]))
    assert.isNull(summarize([null, Number.NaN]))
    assert.strictEqual(summarize([1, null, 3])!.n, 2)
  })

  it("identical values have a zero-width interval, not floating-point noise", () => {
    const s = summarize([0.95, 0.95, 0.95, 0.95])!
    assert.strictEqual(s.sd, 0)
    assert.strictEqual(s.lo, s.hi)
  })
})
