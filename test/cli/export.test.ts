import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { existsSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { exportResults } from "../../src/cli/export.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { runSweep, SweepReporter } from "../../src/dag/SweepRunner.js"
import { resolveSweep } from "../../src/pipeline/SweepGrammar.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { testRegistry } from "../fixtures/kinds.js"

const sweep = Either.getOrThrow(
  Either.flatMap(
    parseYaml("s.yaml", `
name: exported
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: sum, kind: add, inputs: { a: one } }
sweep:
  grid:
    sum.params.extra: [1, 2, 3]
  seeds: 2
`),
    (p) => resolveSweep(p.value, testRegistry, p.source)
  )
)

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent, SweepReporter.layerSilent)
  )
)

describe("exportResults", () => {
  it.live("writes a sweep's trials, summary and trial_results, and a run's nodes, metrics and examples", () =>
    Effect.gen(function* () {
      const result = yield* runSweep(sweep, { sweepId: "sweep-exported" })
      const store = yield* ResultsStore
      const dir = mkdtempSync(join(tmpdir(), "distillery-export-"))

      const parquet = yield* exportResults("sweep-exp", "parquet", join(dir, "p"))
      assert.strictEqual(parquet.kind, "sweep")
      assert.deepStrictEqual(parquet.files.map((f) => [f.table, f.rows]), [["trials", 6], ["summary", 6], ["trial_results", 12]])
      for (const f of parquet.files) assert.isTrue(existsSync(f.path), f.path)
      const trials = yield* store.query(`SELECT * FROM read_parquet('${join(dir, "p", "trials.parquet")}') ORDER BY trial`)
      assert.deepStrictEqual(trials.columns, ["sweep_id", "trial", "point", "run_id", "seed", "status", "sum.params.extra", "one.value", "sum.value"])
      assert.deepStrictEqual(trials.rows.map((r) => [r[1], r[6], r[8]]), [[0, 1, 2], [1, 1, 2], [2, 2, 3], [3, 2, 3], [4, 3, 4], [5, 3, 4]])
      const summary = yield* store.query(
        `SELECT "sum.params.extra", mean, n FROM read_parquet('${join(dir, "p", "summary.parquet")}') WHERE node_id = 'sum' ORDER BY 1`
      )
      assert.deepStrictEqual(summary.rows, [[1, 2, 2], [2, 3, 2], [3, 4, 2]])

      const csv = yield* exportResults(result.trials[0]!.runId, "csv", join(dir, "c"))
      assert.strictEqual(csv.kind, "run")
      assert.deepStrictEqual(csv.files.map((f) => [f.table, f.rows]), [["nodes", 2], ["metrics", 2], ["examples", 1]])
      const metrics = yield* store.query(`SELECT node_id, name, value FROM read_csv('${join(dir, "c", "metrics.csv")}') ORDER BY node_id`)
      assert.deepStrictEqual(metrics.rows, [["one", "value", 1], ["sum", "value", 2]])

      const unknown = yield* Effect.flip(exportResults("nope", "csv", join(dir, "x")))
      assert.strictEqual(unknown._tag, "UnknownRunError")
    }).pipe(Effect.provide(TestLayer))
  )
})
