import { assert, layer } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Layer, Schema } from "effect"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { KindJob } from "../../src/dag/WorkerPool.js"
import { runJob, WorkerPool } from "../../src/dag/WorkerPool.js"
import type { Dataset, Model } from "../../src/domain/Artifact.js"
import { loadDataset } from "../../src/nodes/dataset.js"
import { TrainKind, TrainParams } from "../../src/nodes/train.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import type { Progress } from "../../src/nodes/NodeKind.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures")

const moons = (examples: number) =>
  loadDataset(Schema.decodeUnknownSync(
    Schema.Struct({ source: Schema.Literal("two_moons"), examples: Schema.Number, noise: Schema.Number })
  )({ source: "two_moons", examples, noise: 0.2 }) as never, 3) as Effect.Effect<Dataset, never>

const trainJob = (data: Dataset, epochs: number): KindJob => ({
  kind: "train",
  version: TrainKind.version,
  nodeId: "student",
  params: Schema.encodeSync(TrainParams)(
    Schema.decodeUnknownSync(TrainParams)({ model: { type: "mlp", hidden: [16] }, epochs, batchSize: 32 })
  ),
  inputs: { data },
  inputNodes: { data: "moons" },
  seed: 7,
  backend: "cpu",
  plugins: [],
  baseDir: "."
})

const PoolLayer = WorkerPool.layer(2).pipe(Layer.provideMerge(TfBackend.layer("cpu")))

const weightsOf = (outputs: Readonly<Record<string, unknown>>) =>
  (outputs.model as Model).weights.map((w) => ({ name: w.name, shape: w.shape, values: Array.from(w.values) }))

// One pool for the whole file: its workers start once and serve every test.
layer(PoolLayer, { excludeTestServices: true, timeout: "60 seconds" })("WorkerPool", (it) => {
  it.effect("runs a real train node in a worker, with the same result as inline", () =>
    Effect.gen(function* () {
      const data = yield* moons(200)
      const job = trainJob(data, 3)
      const inline = yield* runJob(job, () => {})
      const pool = yield* WorkerPool
      const progress: Array<Progress> = []
      const inWorker = yield* pool.run(job, (p) => progress.push(p))
      assert.deepStrictEqual(weightsOf(inWorker.outputs), weightsOf(inline.outputs))
      const stable = (rows: typeof inline.metrics) => rows.filter((m) => m.name !== "examples_per_second" && m.name !== "seconds")
      assert.deepStrictEqual(stable(inWorker.metrics), stable(inline.metrics))
      assert.deepStrictEqual(inWorker.info.objective, inline.info.objective)
      // Epoch reports (with facts) always come through.
      assert.deepStrictEqual(progress.filter((p) => p.facts !== undefined).map((p) => p.done), [1, 2, 3])
    })
  )

  it.effect("interrupting a job stops its worker promptly, and the pool keeps working", () =>
    Effect.gen(function* () {
      const data = yield* moons(2000)
      const pool = yield* WorkerPool
      let seen = 0
      let done = 0
      const fiber = yield* Effect.fork(pool.run(trainJob(data, 500), (p) => {
        seen++
        done = p.done
      }))
      while (seen === 0) yield* Effect.sleep(10)
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isBelow(done, 500, "the job was stopped, not run to its end")
      const after = seen
      yield* Effect.sleep(300)
      assert.strictEqual(seen, after, "no progress after the interrupt")
      const next = yield* pool.run(trainJob(yield* moons(100), 1), () => {})
      assert.strictEqual((next.outputs.model as Model)._tag, "Model")
    })
  )

  it.effect("a crashed worker fails only its node", () =>
    Effect.gen(function* () {
      const pool = yield* WorkerPool
      const crash: KindJob = {
        kind: "crash", version: 1, nodeId: "boom", params: {}, inputs: {}, inputNodes: {}, seed: 0, backend: "cpu",
        plugins: ["./crash-plugin.ts"], baseDir: fixtures
      }
      const data = yield* moons(100)
      const [crashed, fine] = yield* Effect.all([Effect.either(pool.run(crash, () => {})), pool.run(trainJob(data, 1), () => {})], {
        concurrency: "unbounded"
      })
      assert.isTrue(Either.isLeft(crashed))
      const error = (crashed as Either.Left<{ _tag: string; message: string }, unknown>).left
      assert.strictEqual(error._tag, "NodeError")
      assert.include(error.message, "the worker exited (code 3)")
      assert.strictEqual((fine.outputs.model as Model)._tag, "Model")
      // The pool replaces the lost worker.
      const again = yield* pool.run(trainJob(data, 1), () => {})
      assert.deepStrictEqual(weightsOf(again.outputs), weightsOf(fine.outputs))
    })
  )

  it.effect("the executor sends heavy nodes to the pool and caches the same result as inline", () =>
    Effect.gen(function* () {
      const text = `
name: pooled
seed: 3
nodes:
  - { id: moons, kind: dataset, params: { source: two_moons, examples: 200 } }
  - id: a
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [8] }, epochs: 2, batchSize: 32 }
  - id: b
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [8] }, epochs: 3, batchSize: 32 }
`
      const pipeline = Either.getOrThrow(Either.flatMap(parseYaml("p.yaml", text), (p) => resolvePipeline(p.value, builtinRegistry, p.source)))
      const base = Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent)
      const run = (layer: Layer.Layer<Executor, unknown>) => Effect.flatMap(Executor, (e) => e.run(pipeline)).pipe(Effect.provide(layer))
      const pool = yield* WorkerPool
      const sent: Array<string> = []
      const counting = Layer.succeed(WorkerPool, { ...pool, run: (job, onProgress) => (sent.push(job.nodeId), pool.run(job, onProgress)) })
      const pooled = yield* run(Executor.layer.pipe(Layer.provide(counting), Layer.provide(base)))
      // Only the heavy kind (train) goes to the workers; the dataset node runs inline.
      assert.sameMembers(sent, ["a", "b"])
      // In-process (this file's context holds a pool, so the inline one is named explicitly).
      const inline = yield* run(Executor.layer.pipe(Layer.provide(WorkerPool.layerInline), Layer.provide(base)))
      assert.deepStrictEqual(pooled.nodes.map((n) => n.status), ["executed", "executed", "executed"])
      for (const id of ["a", "b"]) {
        const p = pooled.nodes.find((n) => n.id === id)!.result!.outputs
        const i = inline.nodes.find((n) => n.id === id)!.result!.outputs
        assert.deepStrictEqual(weightsOf(p), weightsOf(i))
      }
    })
  )
})
