import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, Schema } from "effect"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { runSweep, SweepReporter, sweepSummary } from "../../src/dag/SweepRunner.js"
import type { Metrics } from "../../src/domain/Artifact.js"
import { defineKind, NodeError } from "../../src/nodes/NodeKind.js"
import { register } from "../../src/nodes/Registry.js"
import type { Sweep } from "../../src/pipeline/SweepGrammar.js"
import { resolveSweep } from "../../src/pipeline/SweepGrammar.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { tQuantile975 } from "../../src/store/StudentT.js"
import { executions, testRegistry } from "../fixtures/kinds.js"

const metrics = (subject: string, value: number): Metrics => ({ _tag: "Metrics", subject, values: { value } })

/** value + seed, so that seeds differ; fails on request. */
const Seeded = defineKind({
  kind: "seeded",
  version: 1,
  description: "a number that depends on the seed",
  params: Schema.Struct({
    value: Schema.Number,
    label: Schema.optionalWith(Schema.String, { default: () => "-" }),
    fail: Schema.optionalWith(Schema.Boolean, { default: () => false })
  }),
  inputs: {},
  outputs: { out: "Metrics" },
  run: (ctx) =>
    Effect.gen(function* () {
      executions.push(ctx.nodeId)
      if (ctx.params.fail) return yield* new NodeError({ node: ctx.nodeId, kind: "seeded", message: "exploded on purpose" })
      ctx.metric({ name: "value", step: 1, value: -1 })
      ctx.metric({ name: "value", value: ctx.params.value + ctx.seed })
      return { out: metrics(ctx.nodeId, ctx.params.value + ctx.seed) }
    })
})

const registry = Either.getOrThrow(register(testRegistry, "sweep test", [Seeded]))

const sweepOf = (text: string): Sweep =>
  Either.getOrThrow(Either.flatMap(parseYaml("s.yaml", text), (p) => resolveSweep(p.value, registry, p.source)))

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent, SweepReporter.layerSilent)
  )
)

const count = (id: string) => executions.filter((e) => e === id).length

describe("runSweep", () => {
  it.live("trials share nodes with equal keys, also when they run at the same time", () =>
    Effect.gen(function* () {
      executions.length = 0
      const sweep = sweepOf(`
name: dedup
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: long, kind: slow, params: { ms: 100 }, inputs: { a: one } }
  - { id: sum, kind: add, inputs: { a: long } }
sweep:
  grid:
    sum.params.extra: [1, 2, 3, 4]
  seeds: 2
`)
      const result = yield* runSweep(sweep, { concurrency: 8 })
      assert.strictEqual(result.status, "succeeded")
      assert.strictEqual(result.trials.length, 8)
      // One per seed: the key includes the seed; never one per trial, although all 8 ran at once.
      assert.strictEqual(count("one"), 2)
      assert.strictEqual(count("long"), 2)
      assert.strictEqual(count("sum"), 8)
      const executed = result.trials.flatMap((t) => t.run!.nodes.filter((n) => n.status === "executed").map((n) => n.id))
      assert.strictEqual(executed.filter((id) => id === "long").length, 2)
      // A second sweep of the same pipeline is all cache hits.
      executions.length = 0
      const again = yield* runSweep(sweep, { concurrency: 8 })
      assert.deepStrictEqual(executions, [])
      assert.isTrue(again.trials.every((t) => t.status === "cached"))
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("an interrupted sweep resumes: finished trials are cache hits, the rest run", () =>
    Effect.gen(function* () {
      executions.length = 0
      const sweep = sweepOf(`
name: resume
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: work, kind: slow, params: { ms: 1 }, inputs: { a: one } }
sweep:
  grid:
    work.params.ms: [5, 10, 300, 301]
`)
      const fiber = yield* Effect.fork(runSweep(sweep, { concurrency: 2, sweepId: "sweep-first" }))
      while (executions.filter((e) => e === "work:start").length < 4) yield* Effect.sleep(5)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(count("work"), 2)
      const store = yield* ResultsStore
      const first = yield* store.query("SELECT status FROM sweeps WHERE sweep_id = 'sweep-first'")
      assert.deepStrictEqual(first.rows, [["interrupted"]])
      const trials = yield* store.query("SELECT trial, status FROM trials WHERE sweep_id = 'sweep-first' ORDER BY trial")
      assert.deepStrictEqual(trials.rows, [[0, "succeeded"], [1, "succeeded"], [2, "interrupted"], [3, "interrupted"]])

      executions.length = 0
      const resumed = yield* runSweep(sweep, { concurrency: 4, sweepId: "sweep-second" })
      assert.deepStrictEqual(resumed.trials.map((t) => t.status), ["cached", "cached", "succeeded", "succeeded"])
      assert.deepStrictEqual(executions.filter((e) => e === "work:start").length, 2)
      assert.strictEqual(count("one"), 0)
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("a failed trial fails alone, and the summary names it and why", () =>
    Effect.gen(function* () {
      executions.length = 0
      const sweep = sweepOf(`
name: failing
nodes:
  - { id: x, kind: seeded, params: { value: 1 } }
  - { id: after, kind: add, inputs: { a: x } }
sweep:
  grid:
    x.params.fail: [false, true]
    x.params.value: [1, 2, 3]
`)
      const result = yield* runSweep(sweep, { concurrency: 3, sweepId: "sweep-failing" })
      assert.strictEqual(result.status, "failed")
      assert.deepStrictEqual(result.trials.map((t) => t.status), ["succeeded", "succeeded", "succeeded", "failed", "failed", "failed"])
      assert.strictEqual(count("after"), 3)
      const summary = sweepSummary(result)
      assert.include(summary, "6 trials, 3 succeeded (0 all cached), 3 failed")
      assert.include(summary, "✗ trial 3/6 (fail=true value=1 seed=0) failed")
      assert.include(summary, "node 'x': exploded on purpose")
      const store = yield* ResultsStore
      const row = yield* store.query("SELECT status FROM sweeps WHERE sweep_id = 'sweep-failing'")
      assert.deepStrictEqual(row.rows, [["failed"]])
      const errors = yield* store.query("SELECT trial, error FROM runs WHERE sweep_id = 'sweep-failing' AND status = 'failed' ORDER BY trial")
      assert.deepStrictEqual(errors.rows, [[3, "x: exploded on purpose"], [4, "x: exploded on purpose"], [5, "x: exploded on purpose"]])
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("the trials, trial_results and summary views hold each trial's params and final metrics", () =>
    Effect.gen(function* () {
      const sweep = sweepOf(`
name: views
seed: 1
nodes:
  - { id: score, kind: seeded, params: { value: 0 } }
  - { id: ref, kind: seeded, params: { value: 0 } }
  - { id: sum, kind: add, inputs: { a: score } }
sweep:
  grid:
    score.params.value: [1, 2]
    score.params.label: [x]
  seeds: [1, 3]
  baseline: ref
`)
      const result = yield* runSweep(sweep, { concurrency: 2, sweepId: "sweep-views" })
      assert.strictEqual(result.status, "succeeded")
      const store = yield* ResultsStore
      const trials = yield* store.query("SELECT * FROM trials WHERE sweep_id = 'sweep-views' ORDER BY trial")
      assert.deepStrictEqual(trials.columns, [
        "sweep_id", "trial", "point", "run_id", "seed", "status", "score.params.value", "score.params.label",
        "ref.value", "score.value", "sum.value"
      ])
      assert.deepStrictEqual(trials.rows.map((r) => r.slice(1)), [
        [0, 0, "views-t0", 1, "succeeded", 1, "x", 1, 2, 2],
        [1, 0, "views-t1", 3, "succeeded", 1, "x", 3, 4, 4],
        [2, 1, "views-t2", 1, "succeeded", 2, "x", 1, 3, 3],
        [3, 1, "views-t3", 3, "succeeded", 2, "x", 3, 5, 5]
      ])
      assert.deepStrictEqual(trials.types.slice(6, 8), ["BIGINT", "VARCHAR"])

      const long = yield* store.query(
        "SELECT trial, seed, node_id, metric, value FROM trial_results WHERE sweep_id = 'sweep-views' AND node_id = 'score' ORDER BY trial"
      )
      assert.deepStrictEqual(long.rows, [[0, 1, "score", "value", 2], [1, 3, "score", "value", 4], [2, 1, "score", "value", 3], [3, 3, "score", "value", 5]])

      const summary = yield* store.query(
        `SELECT point, "score.params.value", node_id, n, mean, stddev, ci95, baseline, diff_n, diff_mean, diff_stddev, diff_ci95
         FROM summary WHERE sweep_id = 'sweep-views' ORDER BY point, node_id`
      )
      const round = (v: unknown) => (typeof v === "number" ? Math.round(v * 1e6) / 1e6 : v)
      assert.deepStrictEqual(summary.rows.map((r) => r.map(round)), [
        // score - ref is the swept value in every trial: a paired difference with no spread.
        [0, 1, "ref", 2, 2, round(Math.SQRT2), round(tQuantile975(1)), "ref", null, null, null, null],
        [0, 1, "score", 2, 3, round(Math.SQRT2), round(tQuantile975(1)), "ref", 2, 1, 0, 0],
        [0, 1, "sum", 2, 3, round(Math.SQRT2), round(tQuantile975(1)), "ref", null, null, null, null],
        [1, 2, "ref", 2, 2, round(Math.SQRT2), round(tQuantile975(1)), "ref", null, null, null, null],
        [1, 2, "score", 2, 4, round(Math.SQRT2), round(tQuantile975(1)), "ref", 2, 2, 0, 0],
        [1, 2, "sum", 2, 4, round(Math.SQRT2), round(tQuantile975(1)), "ref", null, null, null, null]
      ])

      // Another sweep with other params: the views' columns become the union.
      yield* runSweep(sweepOf(`
name: views2
nodes:
  - { id: other, kind: seeded, params: { value: 0 } }
sweep:
  zip:
    other.params.value: [0.5, 1.5]
`), { sweepId: "sweep-views2" })
      const union = yield* store.query(`SELECT "score.params.value", "other.params.value", "other.value" FROM trials ORDER BY sweep_id, trial`)
      assert.deepStrictEqual(union.rows.filter((r) => r[1] !== null), [[null, 0.5, 0.5], [null, 1.5, 1.5]])
      assert.strictEqual(union.types[1], "DOUBLE")
    }).pipe(Effect.provide(TestLayer))
  )
})
