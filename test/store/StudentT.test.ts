/**
 * The one t quantile: Student's t table values, the normal limit, and the SQL the `summary` view embeds
 * giving the very same numbers in DuckDB.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { EXACT_DF, tQuantile975 } from "../../src/store/StudentT.js"
import { t975Sql } from "../../src/store/Views.js"

describe("tQuantile975", () => {
  it("matches Student's t table at every df, and tends to the normal quantile", () => {
    const table: ReadonlyArray<readonly [number, number]> = [
      [1, 12.706], [2, 4.303], [3, 3.182], [5, 2.571], [10, 2.228], [20, 2.086], [30, 2.042], [40, 2.021],
      [60, 2.0], [120, 1.98], [1000, 1.962]
    ]
    for (const [df, t] of table) assert.approximately(tQuantile975(df), t, 5e-4, `df ${df}`)
    // Closed forms: df 1 is tan(0.475 pi); df 2 is (2p - 1) / sqrt(2p(1 - p)).
    assert.approximately(tQuantile975(1), Math.tan(0.475 * Math.PI), 1e-12)
    assert.approximately(tQuantile975(2), 0.95 / Math.sqrt(2 * 0.975 * 0.025), 1e-12)
    assert.approximately(tQuantile975(Number.POSITIVE_INFINITY), 1.959963984540054, 1e-15)
    assert.isNaN(tQuantile975(0))
    assert.strictEqual(tQuantile975(2.5), tQuantile975(2))
  })

  it("decreases with df, with no step where the exact values meet the series", () => {
    for (let df = 1; df < 3 * EXACT_DF; df++) assert.isAbove(tQuantile975(df), tQuantile975(df + 1), `df ${df}`)
    assert.approximately(tQuantile975(EXACT_DF + 1), tQuantile975(EXACT_DF), 3e-4)
  })

  it.effect("t975Sql gives the same numbers in DuckDB", () =>
    Effect.gen(function*() {
      const store = yield* ResultsStore
      const ns = [0, 1, ...Array.from({ length: EXACT_DF + 10 }, (_, i) => i + 2), 500, 10_001, 1_000_000]
      const r = yield* store.query(`SELECT n, ${t975Sql("n")} FROM (SELECT unnest($1::BIGINT[]) AS n) ORDER BY n`, [ns])
      for (const [n, t] of r.rows as ReadonlyArray<readonly [number, number | null]>) {
        if (n < 2) assert.isNull(t)
        else assert.approximately(t!, tQuantile975(n - 1), 1e-13, `n ${n}`)
      }
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})
