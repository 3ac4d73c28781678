import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor, pipelineCacheKeys } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { Pipeline } from "../../src/pipeline/Pipeline.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { executions, testRegistry } from "../fixtures/kinds.js"

const pipelineOf = (text: string): Pipeline =>
  Either.getOrThrow(Either.flatMap(parseYaml("p.yaml", text), (p) => resolvePipeline(p.value, testRegistry, p.source)))

const chain = (value: number, extra = 0) =>
  pipelineOf(`
name: chain
nodes:
  - id: one
    kind: constant
    params: { value: ${value} }
  - id: two
    kind: constant
    params: { value: 10 }
  - id: sum
    kind: add
    inputs: { a: one, b: two }
    params: { extra: ${extra} }
  - id: twice
    kind: add
    inputs: { a: sum, b: sum }
`)

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent)
  )
)

/** Runs and returns node id -> status, clearing the execution log first. */
const statuses = (pipeline: Pipeline, options = {}) =>
  Effect.gen(function* () {
    executions.length = 0
    const executor = yield* Executor
    const result = yield* executor.run(pipeline, options)
    return Object.fromEntries(result.nodes.map((n) => [n.id, n.status]))
  })

describe("Executor", () => {
  it.live("executes every node once, then serves all from the cache", () =>
    Effect.gen(function* () {
      const first = yield* statuses(chain(1))
      assert.deepStrictEqual(first, { one: "executed", two: "executed", sum: "executed", twice: "executed" })
      assert.sameMembers(executions, ["one", "two", "sum", "twice"])
      const second = yield* statuses(chain(1))
      assert.deepStrictEqual(second, { one: "cached", two: "cached", sum: "cached", twice: "cached" })
      assert.deepStrictEqual(executions, [])
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("re-runs a changed node and only what depends on it", () =>
    Effect.gen(function* () {
      yield* statuses(chain(1))
      const changed = yield* statuses(chain(2))
      assert.deepStrictEqual(changed, { one: "executed", two: "cached", sum: "executed", twice: "executed" })
      const downstreamOnly = yield* statuses(chain(2, 5))
      assert.deepStrictEqual(downstreamOnly, { one: "cached", two: "cached", sum: "executed", twice: "executed" })
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("a cache hit with bulk outputs is read only when a computing node needs them", () =>
    Effect.gen(function* () {
      const bulk = pipelineOf(`
name: bulk
nodes:
  - { id: data, kind: bulk, params: { n: 100 } }
  - { id: total, kind: total, inputs: { a: data } }
`)
      const executor = yield* Executor
      const store = yield* ResultsStore
      const first = yield* executor.run(bulk)
      assert.isDefined(first.nodes.find((n) => n.id === "data")!.result)
      // All cached: the Features artifact is left unread; its info and metrics are copied from the first run.
      const cached = yield* executor.run(bulk)
      assert.deepStrictEqual(cached.nodes.map((n) => n.status), ["cached", "cached"])
      assert.isUndefined(cached.nodes.find((n) => n.id === "data")!.result)
      const total = cached.nodes.find((n) => n.id === "total")!.result!.outputs.out
      assert.strictEqual(total?._tag === "Metrics" ? total.values.value : -1, 4950)
      const recorded = yield* store.query(
        "SELECT run_id, CAST(info AS VARCHAR), (SELECT count(*) FROM metrics m WHERE m.run_id = n.run_id AND m.node_id = 'data') FROM nodes n WHERE node_id = 'data' ORDER BY started_at"
      )
      assert.deepStrictEqual(recorded.rows.map((r) => [r[1], r[2]]), [[`{"made":100}`, 1], [`{"made":100}`, 1]])
      // A node that computes reads it.
      executions.length = 0
      const rerun = yield* executor.run(bulk, { rerun: ["total"] })
      assert.deepStrictEqual(executions, ["total"])
      assert.isDefined(rerun.nodes.find((n) => n.id === "data")!.result)
      const again = rerun.nodes.find((n) => n.id === "total")!.result!.outputs.out
      assert.strictEqual(again?._tag === "Metrics" ? again.values.value : -1, 4950)
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("unusable cached bytes are quarantined and recomputed, and the run goes on", () =>
    Effect.gen(function* () {
      const bulk = pipelineOf(`
name: bulk
nodes:
  - { id: data, kind: bulk, params: { n: 50 } }
  - { id: total, kind: total, inputs: { a: data } }
`)
      const executor = yield* Executor
      const artifacts = yield* ArtifactStore
      yield* executor.run(bulk)
      const keys = pipelineCacheKeys(bulk)
      const fileOf = (node: string) =>
        Effect.map(artifacts.meta(keys.get(node)!), (m) => path.join(artifacts.root!, "artifacts", Option.getOrThrow(m).artifactId.slice(0, 2), Option.getOrThrow(m).artifactId))
      // A flipped byte in total's result: its sha256 no longer matches.
      const totalFile = yield* fileOf("total")
      const flipped = fs.readFileSync(totalFile)
      flipped[flipped.length - 1]! ^= 0x01
      fs.writeFileSync(totalFile, flipped)
      executions.length = 0
      const healed = yield* executor.run(bulk)
      assert.deepStrictEqual(Object.fromEntries(healed.nodes.map((n) => [n.id, n.status])), { data: "cached", total: "executed" })
      const total = healed.nodes.find((n) => n.id === "total")!.result!.outputs.out
      assert.strictEqual(total?._tag === "Metrics" ? total.values.value : -1, 1225)
      // A cut-short dataset artifact (it hashes, as the store is told, but does not decode).
      const dataFile = yield* fileOf("data")
      const meta = Option.getOrThrow(yield* artifacts.meta(keys.get("data")!))
      const cut = fs.readFileSync(dataFile).subarray(0, 40)
      yield* artifacts.removeKey(keys.get("data")!)
      const put = yield* artifacts.put(keys.get("data")!, new Uint8Array(cut), { node: "data", kind: "bulk" })
      assert.notStrictEqual(put.artifactId, meta.artifactId)
      const again = yield* executor.run(bulk, { rerun: ["total"] })
      assert.deepStrictEqual(Object.fromEntries(again.nodes.map((n) => [n.id, n.status])), { data: "executed", total: "executed" })
      const events = yield* artifacts.quarantined()
      assert.deepStrictEqual(events.map((e) => e.node), ["total", "data"])
      assert.match(events[0]!.reason, /sha256 mismatch/)
      assert.match(events[1]!.reason, /does not decode/)
    }).pipe(
      Effect.provide(
        Executor.layer.pipe(
          Layer.provideMerge(
            Layer.mergeAll(
              Layer.unwrapEffect(Effect.sync(() => ArtifactStore.layerFileSystem(fs.mkdtempSync(path.join(os.tmpdir(), "distillery-heal-"))))),
              ResultsStore.layerMemory,
              TfBackend.layer("cpu"),
              Reporter.layerSilent
            )
          )
        )
      )
    )
  )

  it.live("--force recomputes everything and --rerun recomputes a node and its dependents", () =>
    Effect.gen(function* () {
      yield* statuses(chain(1))
      const forced = yield* statuses(chain(1), { force: true })
      assert.deepStrictEqual(Object.values(forced), ["executed", "executed", "executed", "executed"])
      const rerun = yield* statuses(chain(1), { rerun: ["sum"] })
      assert.deepStrictEqual(rerun, { one: "cached", two: "cached", sum: "executed", twice: "executed" })
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("records runs, nodes, metrics and examples in the results store", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const first = yield* executor.run(chain(3))
      const second = yield* executor.run(chain(3))
      const store = yield* ResultsStore
      const nodes = yield* store.query(
        "SELECT run_id, node_id, status FROM nodes WHERE node_id = 'sum' ORDER BY started_at, status DESC"
      )
      assert.deepStrictEqual(nodes.rows, [
        [first.runId, "sum", "executed"],
        [second.runId, "sum", "cached"]
      ])
      // Cache hits replay the node's metrics and examples into the new run.
      const metrics = yield* store.query("SELECT run_id, value FROM metrics WHERE node_id = 'twice' ORDER BY value")
      assert.deepStrictEqual(metrics.rows.map((r) => r[1]), [26, 26])
      const examples = yield* store.query("SELECT count(*) FROM examples WHERE run_id = $1", [second.runId])
      assert.deepStrictEqual(examples.rows, [[2]])
      const runs = yield* store.query("SELECT status FROM runs ORDER BY started_at")
      assert.deepStrictEqual(runs.rows, [["succeeded"], ["succeeded"]])
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("a failed node stops only its dependents; what finished stays cached", () =>
    Effect.gen(function* () {
      const pipeline = pipelineOf(`
name: partial
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: bad, kind: boom, inputs: { a: one } }
  - { id: after, kind: add, inputs: { a: bad } }
  - { id: other, kind: add, inputs: { a: one } }
`)
      executions.length = 0
      const executor = yield* Executor
      const error = yield* Effect.flip(executor.run(pipeline))
      assert.strictEqual(error._tag, "RunFailedError")
      assert.include(error.message, "node 'bad': exploded on purpose")
      assert.sameMembers(executions, ["one", "bad", "other"])
      const again = yield* Effect.flip(executor.run(pipeline))
      assert.strictEqual(again._tag, "RunFailedError")
      const store = yield* ResultsStore
      const rows = yield* store.query(
        "SELECT node_id, status FROM nodes WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) ORDER BY node_id"
      )
      assert.deepStrictEqual(rows.rows, [
        ["bad", "failed"],
        ["one", "cached"],
        ["other", "cached"]
      ], JSON.stringify(rows.rows))
      const runs = yield* store.query("SELECT DISTINCT status FROM runs")
      assert.deepStrictEqual(runs.rows, [["failed"]])
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("a run interrupted mid-node resumes from the cache", () =>
    Effect.gen(function* () {
      const pipeline = pipelineOf(`
name: long
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: long, kind: slow, params: { ms: 400 }, inputs: { a: one } }
  - { id: after, kind: add, inputs: { a: long } }
`)
      executions.length = 0
      const executor = yield* Executor
      const fiber = yield* Effect.fork(executor.run(pipeline))
      // Wait until the slow node has started, then interrupt (what Ctrl-C does).
      while (!executions.includes("long:start")) yield* Effect.sleep(5)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(executions, ["one", "long:start"])
      const store = yield* ResultsStore
      const status = yield* store.query("SELECT status FROM runs")
      assert.deepStrictEqual(status.rows, [["interrupted"]])
      const resumed = yield* statuses(pipeline)
      assert.deepStrictEqual(resumed, { one: "cached", long: "executed", after: "executed" })
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("a run waiting on another run's node computes it itself when that run is interrupted", () =>
    Effect.gen(function* () {
      const pipeline = pipelineOf(`
name: handover
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: long, kind: slow, params: { ms: 200 }, inputs: { a: one } }
`)
      executions.length = 0
      const executor = yield* Executor
      const owner = yield* Effect.fork(executor.run(pipeline))
      while (!executions.includes("long:start")) yield* Effect.sleep(5)
      const waiter = yield* Effect.fork(executor.run(pipeline))
      yield* Effect.sleep(20)
      yield* Fiber.interrupt(owner)
      const result = yield* Fiber.join(waiter)
      assert.deepStrictEqual(result.nodes.map((n) => [n.id, n.status]), [["one", "cached"], ["long", "executed"]])
      assert.deepStrictEqual(executions, ["one", "long:start", "long:start", "long"])
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("concurrent runs share a node in flight instead of computing it twice", () =>
    Effect.gen(function* () {
      const pipeline = pipelineOf(`
name: shared
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: long, kind: slow, params: { ms: 100 }, inputs: { a: one } }
`)
      executions.length = 0
      const executor = yield* Executor
      const results = yield* Effect.all([executor.run(pipeline), executor.run(pipeline), executor.run(pipeline)], {
        concurrency: "unbounded"
      })
      assert.strictEqual(executions.filter((e) => e === "long").length, 1)
      assert.strictEqual(executions.filter((e) => e === "one").length, 1)
      const executed = results.flatMap((r) => r.nodes.filter((n) => n.status === "executed").map((n) => n.id))
      assert.sameMembers(executed, ["one", "long"])
    }).pipe(Effect.provide(TestLayer))
  )
})

describe("Executor on a shared file store", () => {
  const tempDir = (prefix: string) =>
    Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )

  /** An executor over the store in `dir`, with its own in-process dedupe, as another process would have. */
  const executorOn = (dir: string, options?: Parameters<typeof ArtifactStore.layerFileSystem>[1]) =>
    Executor.layer.pipe(
      Layer.provideMerge(
        Layer.mergeAll(
          ArtifactStore.layerFileSystem(dir, options),
          ResultsStore.layer(path.join(dir, "results.duckdb")),
          TfBackend.layer("cpu"),
          Reporter.layerSilent
        )
      )
    )

  it.live("two executors on one store compute each node once: the second waits on the claim, then reads a cache hit", () =>
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir("distillery-claimed-")
      executions.length = 0
      const runOn = (layer: Layer.Layer<Executor, unknown>) =>
        Effect.flatMap(Executor, (e) => e.run(chain(4))).pipe(Effect.provide(layer))
      const [a, b] = yield* Effect.all([runOn(executorOn(dir)), runOn(executorOn(dir))], { concurrency: 2 })
      assert.sameMembers([...executions].sort(), ["one", "sum", "twice", "two"])
      const statusesOf = (r: typeof a) => r.nodes.map((n) => n.status)
      assert.strictEqual([...statusesOf(a), ...statusesOf(b)].filter((s) => s === "executed").length, 4)
      assert.deepStrictEqual(fs.readdirSync(path.join(dir, "claims")), [])
    }))
  )

  it.live("a full disk (ENOSPC) fails the node with a clear error, leaves the store consistent, and the next run resumes", () =>
    Effect.scoped(Effect.gen(function* () {
      const dir = yield* tempDir("distillery-enospc-")
      // The third artifact written (sum's: one and two come first) finds the disk full halfway through.
      let artifactWrites = 0
      let full = true
      const layer = executorOn(dir, {
        writeData: async (handle, data, target) => {
          if (full && target.includes(`${path.sep}artifacts${path.sep}`) && ++artifactWrites === 3) {
            await handle.writeFile(typeof data === "string" ? data.slice(0, 10) : data.subarray(0, data.byteLength >> 1))
            throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" })
          }
          await handle.writeFile(data)
        }
      })
      executions.length = 0
      const failed = yield* Effect.flip(Effect.flatMap(Executor, (e) => e.run(chain(5))).pipe(Effect.provide(layer)))
      assert.strictEqual(failed._tag, "RunFailedError")
      assert.match(failed.message, /node 'sum': could not store the result: no space left on the device holding .*artifacts/)
      assert.match(failed.message, /free some space/)
      // Consistent: no temp file left, every key names bytes that are there.
      const artifacts = yield* Effect.provide(ArtifactStore, ArtifactStore.layerFileSystem(dir))
      assert.deepStrictEqual(yield* artifacts.tempFiles(), [])
      const keys = yield* artifacts.keys()
      assert.strictEqual(keys.length, 2)
      for (const k of keys) assert.isTrue(yield* artifacts.has(k.key))
      full = false
      executions.length = 0
      const resumed = yield* Effect.flatMap(Executor, (e) => e.run(chain(5))).pipe(Effect.provide(layer))
      assert.deepStrictEqual(
        Object.fromEntries(resumed.nodes.map((n) => [n.id, n.status])),
        { one: "cached", two: "cached", sum: "executed", twice: "executed" }
      )
    }))
  )
})
