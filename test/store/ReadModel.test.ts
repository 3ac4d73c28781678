/**
 * The read model against a real (in-memory) results store, filled through the ResultsStore API as runs
 * and sweeps fill it: one target rule, and the records every verb and the report read.
 */
import { spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option, TestClock } from "effect"
import type { CacheKey, RunId } from "../../src/domain/Ids.js"
import * as ReadModel from "../../src/store/ReadModel.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { tQuantile975 } from "../../src/store/StudentT.js"
import { startFakeSweep } from "../report/fixtures.js"

const key = (s: string) => s.padEnd(64, "0") as CacheKey

/** A run of two nodes: `train` (curve and a final loss) and `eval` (accuracy and three examples). */
const recordRun = (id: string, accuracy: number, extra: { readonly sweepId?: string; readonly trial?: number } = {}) =>
  Effect.gen(function*() {
    const store = yield* ResultsStore
    const runId = id as RunId
    yield* store.startRun({ runId, pipeline: "p", pipelinePath: "p.yaml", backend: "cpu", ...extra })
    yield* store.recordNode({
      runId, nodeId: "train", kind: "train", kindVersion: 1, cacheKey: key("t"), params: { epochs: 2 },
      inputs: {}, status: "cached", durationMs: 1234
    })
    yield* store.recordMetrics(runId, "train", key("t"), [
      { name: "train_loss", step: 1, value: 2 },
      { name: "train_loss", step: 2, value: 1 },
      { name: "loss", value: 0.5 }
    ])
    yield* store.recordNode({
      runId, nodeId: "eval", kind: "evaluate", kindVersion: 1, cacheKey: key(`e${id}`), params: {},
      inputs: { model: "train.model" }, status: "executed", durationMs: 10
    })
    yield* store.recordMetrics(runId, "eval", key(`e${id}`), [{ name: "accuracy", value: accuracy }])
    yield* store.recordExamples(key(`e${id}`), [
      { split: "test", exampleId: 0, label: 1, prediction: 1 },
      { split: "test", exampleId: 1, label: 1, prediction: 2 },
      { split: "test", exampleId: 2, label: 0, prediction: 2 }
    ])
    yield* store.finishRun(runId, "succeeded")
    yield* TestClock.adjust("1 second")
  })

/** A sweep over `train.params.temperature` in [1, 2] with `seeds` seeds each; its trial runs are `<id>-t<k>`. */
const recordSweep = (sweepId: string, seeds: number, accuracy: (t: number, seed: number) => number) =>
  Effect.gen(function*() {
    const store = yield* ResultsStore
    const trials = yield* startFakeSweep(sweepId, "train.params.temperature", [1, 2], seeds)
    for (const t of trials) yield* recordRun(t.runId, accuracy(t.value, t.seed), { sweepId, trial: t.trial })
    yield* store.finishSweep(sweepId, "succeeded")
    yield* store.refreshViews()
  })

const failure = <A>(exit: Exit.Exit<A, unknown>): { readonly _tag: string; readonly message: string } => {
  if (Exit.isFailure(exit) && exit.cause._tag === "Fail") return exit.cause.error as { _tag: string; message: string }
  assert.fail("expected a failure")
}

describe("ReadModel.resolveTarget", () => {
  it.effect("one rule: exact id (a sweep first), else a unique prefix, else an error naming the choices", () =>
    Effect.gen(function*() {
      yield* recordRun("run-aaa", 0.9)
      yield* recordSweep("sweep-x", 2, () => 0.8)
      yield* recordRun("run-abb", 0.9)
      // A run whose id is a sweep's id: the sweep wins.
      yield* recordRun("sweep-x", 0.5)
      assert.deepStrictEqual(yield* ReadModel.resolveTarget("run-aaa"), { kind: "run", id: "run-aaa" })
      assert.deepStrictEqual(yield* ReadModel.resolveTarget("run-ab"), { kind: "run", id: "run-abb" })
      assert.deepStrictEqual(yield* ReadModel.resolveTarget("sweep-x"), { kind: "sweep", id: "sweep-x" })
      assert.deepStrictEqual(yield* ReadModel.resolveTarget("sweep-x-t3"), { kind: "run", id: "sweep-x-t3" })
      // `last`: the newest sweep or stand-alone run; trial runs are not candidates.
      assert.deepStrictEqual(yield* ReadModel.resolveTarget("last"), { kind: "run", id: "sweep-x" })

      const ambiguous = failure(yield* Effect.exit(ReadModel.resolveTarget("run-")))
      assert.strictEqual(ambiguous._tag, "UnknownRunError")
      assert.strictEqual(ambiguous.message, "'run-' matches 2 runs and sweeps: run-abb, run-aaa; give more of it")
      const missing = failure(yield* Effect.exit(ReadModel.resolveTarget("nope")))
      assert.strictEqual(missing._tag, "UnknownRunError")
      assert.strictEqual(
        missing.message,
        "no run or sweep 'nope'; recent runs: sweep-x, run-abb, run-aaa; recent sweeps: sweep-x (`distillery ls` lists them all)"
      )
    }).pipe(Effect.provide(ResultsStore.layerMemory)))

  it.effect("an empty store says so; an empty sweeps table hides no run", () =>
    Effect.gen(function*() {
      assert.strictEqual(failure(yield* Effect.exit(ReadModel.resolveTarget("last"))).message, "no runs yet: run a pipeline first")
      assert.include(failure(yield* Effect.exit(ReadModel.resolveTarget("x"))).message, "no run or sweep 'x'; recent runs: none")
      yield* recordRun("r1", 0.5)
      assert.deepStrictEqual(yield* ReadModel.resolveTarget("last"), { kind: "run", id: "r1" })
      assert.deepStrictEqual(yield* ReadModel.resolveTarget("r"), { kind: "run", id: "r1" })
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})

describe("ReadModel runs, nodes, metrics, examples", () => {
  it.effect("reads back what a run recorded", () =>
    Effect.gen(function*() {
      yield* recordRun("r1", 0.75)
      const run = Option.getOrThrow(yield* ReadModel.run("r1"))
      assert.deepStrictEqual(
        [run.runId, run.pipeline, run.pipelinePath, run.status, run.backend, run.error, run.sweepId, run.trial],
        ["r1", "p", "p.yaml", "succeeded", "cpu", null, null, null]
      )
      assert.strictEqual(run.startedAt, "1970-01-01T00:00:00.000Z")
      assert.isTrue(Option.isNone(yield* ReadModel.run("r2")))

      const nodes = yield* ReadModel.nodes(["r1"])
      assert.deepStrictEqual(nodes.map((n) => [n.nodeId, n.kind, n.status, n.durationMs]), [
        ["train", "train", "cached", 1234],
        ["eval", "evaluate", "executed", 10]
      ])
      assert.deepStrictEqual(nodes[0]!.params, { epochs: 2 })
      assert.deepStrictEqual(nodes[1]!.inputs, { model: "train.model" })
      assert.deepStrictEqual(yield* ReadModel.nodeStatusCounts("r1"), { cached: 1, executed: 1 })
      assert.deepStrictEqual([...(yield* ReadModel.referencedCacheKeys())].sort(), [key("er1"), key("t")])

      assert.deepStrictEqual(
        (yield* ReadModel.finalMetrics(["r1"])).map((m) => [m.nodeId, m.name, m.value]),
        [["train", "loss", 0.5], ["eval", "accuracy", 0.75]]
      )
      assert.deepStrictEqual(
        (yield* ReadModel.curves(["r1"], ["train_loss", "val_loss"])).map((m) => [m.nodeId, m.step, m.value]),
        [["train", 1, 2], ["train", 2, 1]]
      )
      const mistakes = yield* ReadModel.mistakes(["r1"], "eval", null, { oneRun: false })
      assert.deepStrictEqual(mistakes, {
        cells: [
          { label: 0, prediction: 2, count: 1, teacherRight: null },
          { label: 1, prediction: 2, count: 1, teacherRight: null }
        ],
        total: 3,
        runs: 1
      })
    }).pipe(Effect.provide(ResultsStore.layerMemory)))

  it.effect("ls: stand-alone runs (every run with all) and sweeps, newest first", () =>
    Effect.gen(function*() {
      yield* recordRun("r1", 0.75)
      yield* recordSweep("sweep-y", 1, () => 0.5)
      const runs = yield* ReadModel.listRuns({ limit: 10, all: false })
      assert.deepStrictEqual(runs.columns.slice(0, 3), ["run_id", "pipeline", "status"])
      assert.deepStrictEqual(runs.rows.map((r) => [r[0], r[6], r[7], r[8]]), [["r1", 2, 1, 1]])
      assert.strictEqual((yield* ReadModel.listRuns({ limit: 10, all: true })).rows.length, 3)
      const sweeps = Option.getOrThrow(yield* ReadModel.listSweeps(10))
      assert.deepStrictEqual(sweeps.rows.map((r) => [r[0], r[3], r[4]]), [["sweep-y", 2, 2]])
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})

describe("ReadModel for verify", () => {
  it.effect("the results runs recorded, by cache key with their runs; runs and sweeps left running", () =>
    Effect.gen(function*() {
      const store = yield* ResultsStore
      yield* recordRun("r1", 0.75)
      yield* recordRun("r2", 0.8)
      yield* store.startRun({ runId: "r3" as RunId, pipeline: "p", pipelinePath: "p.yaml", backend: "cpu" })
      yield* store.recordNode({
        runId: "r3" as RunId, nodeId: "eval", kind: "evaluate", kindVersion: 1, cacheKey: key("f"), params: {},
        inputs: {}, status: "failed", durationMs: 1
      })
      const results = yield* ReadModel.recordedResults()
      assert.deepStrictEqual(results.map((r) => [r.nodeId, r.cacheKey, r.runIds]), [
        ["eval", key("er1"), ["r1"]],
        ["eval", key("er2"), ["r2"]],
        ["train", key("t"), ["r1", "r2"]]
      ])
      // r3 is running in this process: only once its process is gone was it left running.
      assert.deepStrictEqual(yield* ReadModel.runsLeftRunning(), [])
      const dead = spawnSync(process.execPath, ["-e", "0"]).pid!
      yield* store.query("UPDATE runs SET pid = $1 WHERE run_id = 'r3'", [dead])
      assert.deepStrictEqual((yield* ReadModel.runsLeftRunning()).map((r) => r.runId), ["r3"])
      yield* startFakeSweep("sweep-z", "train.params.temperature", [1], 1)
      assert.deepStrictEqual(yield* ReadModel.sweepsLeftRunning(), [])
      yield* store.query("UPDATE sweeps SET pid = $1 WHERE sweep_id = 'sweep-z'", [dead])
      assert.deepStrictEqual(yield* ReadModel.sweepsLeftRunning(), ["sweep-z"])
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})

describe("ReadModel sweeps", () => {
  it.effect("a sweep's record, trials, trials view and summary", () =>
    Effect.gen(function*() {
      yield* recordSweep("sweep-z", 2, (t, seed) => 0.5 + 0.1 * t + 0.01 * seed)
      const sweep = Option.getOrThrow(yield* ReadModel.sweep("sweep-z"))
      assert.deepStrictEqual([sweep.status, sweep.trials, sweep.params, sweep.baseline], [
        "succeeded", 4, ["train.params.temperature"], null
      ])
      const { params, trials } = yield* ReadModel.trials("sweep-z")
      assert.deepStrictEqual(params, ["train.params.temperature"])
      assert.deepStrictEqual(trials.map((t) => [t.trial, t.runId, t.seed, t.status, t.params["train.params.temperature"]]), [
        [0, "sweep-z-t0", 0, "succeeded", 1],
        [1, "sweep-z-t1", 1, "succeeded", 1],
        [2, "sweep-z-t2", 0, "succeeded", 2],
        [3, "sweep-z-t3", 1, "succeeded", 2]
      ])
      assert.deepStrictEqual((yield* ReadModel.sweepRuns("sweep-z")).map((r) => r.trial), [0, 1, 2, 3])
      const table = yield* ReadModel.trialsTable("sweep-z")
      assert.include(table.columns, "eval.accuracy")
      assert.strictEqual(table.rows.length, 4)
      const summary = yield* ReadModel.summary("sweep-z", "accuracy")
      assert.deepStrictEqual(summary.map((s) => [s.point, s.params, s.nodeId, s.n]), [
        [0, { "train.params.temperature": 1 }, "eval", 2],
        [1, { "train.params.temperature": 2 }, "eval", 2]
      ])
      assert.approximately(summary[0]!.mean!, 0.605, 1e-12)
    }).pipe(Effect.provide(ResultsStore.layerMemory)))

  it.effect("the summary's 95% interval uses the exact t quantile past 30 degrees of freedom", () =>
    Effect.gen(function*() {
      // 42 seeds: df 41, where a t table stepping from 40 to 60 would give 2.021, not 2.0195.
      const seeds = 42
      const accuracy = (t: number, seed: number) => 0.7 + 0.01 * t + 0.002 * ((seed * 7) % 11)
      yield* recordSweep("sweep-w", seeds, accuracy)
      const [first] = yield* ReadModel.summary("sweep-w", "accuracy")
      const xs = Array.from({ length: seeds }, (_, seed) => accuracy(1, seed))
      const mean = xs.reduce((a, b) => a + b, 0) / seeds
      const sd = Math.sqrt(xs.reduce((a, v) => a + (v - mean) ** 2, 0) / (seeds - 1))
      assert.strictEqual(first!.n, seeds)
      assert.approximately(first!.ci95!, tQuantile975(seeds - 1) * sd / Math.sqrt(seeds), 1e-12)
      assert.approximately(tQuantile975(41), 2.0195, 1e-4)
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})
