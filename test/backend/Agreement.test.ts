/**
 * How results differ between backends: each backend is deterministic per seed (a forced re-run gives
 * bit-identical metrics), and the CPU backends (cpu, wasm, native) agree with the plain-JS `cpu`
 * reference within the tolerance the README states: the same small pipeline from the same seed ends
 * with test NLLs within 0.1% of each other and accuracies within 1 point (measured: wasm within 1e-8 and
 * native within 4e-6 of cpu's NLL, equal accuracies). They differ at all because float32
 * sums are taken in different orders (XNNPACK, our SGEMM and tfjs's JS kernels block differently), and
 * a training run amplifies those last-bit differences over its steps.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { BackendName } from "../../src/backend/TfBackend.js"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { loadNative } from "../../src/backend/Native.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import type { RunResult } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { requirement } from "../fixtures/requirements.js"

/** The README's stated tolerance between backends. */
const backendTolerance = { nllRelative: 1e-3, accuracy: 0.01 }

const yaml = `
name: agreement
seed: 3
nodes:
  - { id: moons, kind: dataset, params: { source: two_moons, examples: 400, noise: 0.2 } }
  - id: teacher
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [32, 32] }, epochs: 8, batchSize: 32, optimizer: { type: adam, learningRate: 0.01 } }
  - { id: soft, kind: generate, inputs: { model: teacher, data: moons } }
  - id: student
    kind: train
    inputs: { data: moons, teacher: soft }
    params: { model: { type: mlp, hidden: [8] }, epochs: 8, batchSize: 32, objective: { divergence: forward_kl, temperature: 2, alpha: 0.7 } }
  - { id: eval_student, kind: evaluate, inputs: { model: student, data: moons, teacher: teacher } }
  - { id: eval_teacher, kind: evaluate, inputs: { model: teacher, data: moons } }
`

const file = join(mkdtempSync(join(tmpdir(), "distillery-agreement-")), "agreement.yaml")
writeFileSync(file, yaml)

const metricsOf = (result: RunResult) =>
  Object.fromEntries(
    result.nodes.flatMap((n) =>
      Object.values(n.result?.outputs ?? {}).flatMap((o) => (o._tag === "Metrics" ? [[n.id, { accuracy: o.values.accuracy!, nll: o.values.nll! }] as const] : []))
    )
  )

/** Runs the pipeline on `backend` twice (the second forced) in fresh in-memory stores. */
const twice = (backend: BackendName) =>
  Effect.gen(function* () {
    const pipeline = yield* loadPipelineFile(file, builtinRegistry)
    const executor = yield* Executor
    const first = yield* executor.run(pipeline)
    const again = yield* executor.run(pipeline, { force: true })
    const store = yield* ResultsStore
    const recorded = yield* store.query("SELECT DISTINCT backend FROM runs")
    return { first: metricsOf(first), again: metricsOf(again), recorded: recorded.rows.map((r) => r[0]) }
  }).pipe(
    Effect.provide(
      Executor.layer.pipe(
        Layer.provideMerge(Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer(backend), Reporter.layerSilent))
      )
    )
  )

const hasNative = requirement("the native addon (for the backend agreement test)", loadNative())

describe("backends", () => {
  it.live("are deterministic per seed and agree with the cpu reference within the stated tolerance", () =>
    Effect.gen(function* () {
      const reference = yield* twice("cpu")
      const backends: Array<BackendName> = hasNative ? ["wasm", "native"] : ["wasm"]
      for (const backend of ["cpu" as const, ...backends]) {
        const run = backend === "cpu" ? reference : yield* twice(backend)
        assert.deepStrictEqual(run.recorded, [backend], "the run records the backend it used")
        assert.deepStrictEqual(run.again, run.first, `${backend}: a forced re-run from the same seed gives identical metrics`)
        for (const [node, m] of Object.entries(run.first)) {
          const ref = reference.first[node]!
          assert.isAtMost(Math.abs(m.nll - ref.nll) / ref.nll, backendTolerance.nllRelative, `${backend} ${node}: nll ${m.nll} vs cpu ${ref.nll}`)
          assert.isAtMost(Math.abs(m.accuracy - ref.accuracy), backendTolerance.accuracy, `${backend} ${node}: accuracy ${m.accuracy} vs cpu ${ref.accuracy}`)
        }
      }
    })
  )
})
