import { assert, afterAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { BackendError, initBackend, probeWebGpu } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import { decodeModelSpec } from "../../src/models/ModelSpec.js"
import { tfjsAdam } from "../../src/backend/Adam.js"
import type { TrainOptions } from "../../src/train/Contract.js"
import { disposeOptimizer, makeOptimizer } from "../../src/train/Optimizer.js"
import { train } from "../../src/train/Trainer.js"
import { assertClose, runOn, uniformArray as random } from "../fixtures/backends.js"
import { cli } from "../fixtures/cli.js"
import { probeTestAdapter } from "../fixtures/webgpu.js"

const probe = await probeTestAdapter("webgpu tests")

describe("webgpu without an adapter", () => {
  it.skipIf(probe.ok)("initBackend('webgpu') fails naming what is missing; auto falls back to a CPU backend", async () => {
    let error: unknown
    try {
      await initBackend("webgpu")
    } catch (e) {
      error = e
    }
    assert.instanceOf(error, BackendError)
    assert.include((error as BackendError).message, probe.ok ? "" : probe.reason)
    assert.include(["native", "wasm"], await initBackend("auto"))
    await initBackend("cpu")
  })
})

describe.skipIf(!probe.ok)("webgpu", () => {
  afterAll(async () => {
    await initBackend("cpu")
  })

  it("initBackend('webgpu') takes the adapter; auto takes it only when it is not a software one", async () => {
    assert.strictEqual(await initBackend("webgpu"), "webgpu")
    assert.strictEqual(tf.getBackend(), "webgpu")
    const strict = await probeWebGpu()
    if (probe.ok && probe.adapter.software) {
      assert.isFalse(strict.ok)
      assert.include(strict.ok ? "" : strict.reason, "software")
      assert.include(["native", "wasm"], await initBackend("auto"))
    } else {
      assert.strictEqual(await initBackend("auto"), "webgpu")
    }
  })

  it("fused Adam: one dispatch per variable, the same values as tfjs's Adam, clones untouched", async () => {
    await initBackend("webgpu")
    const init = [random(40 * 7, 11), random(7, 12)]
    const target = [random(40 * 7, 13), random(7, 14)]
    const pass = (globalThis as unknown as { GPUComputePassEncoder: { prototype: { dispatchWorkgroups: (...a: Array<number>) => void } } })
      .GPUComputePassEncoder.prototype
    const dispatch = pass.dispatchWorkgroups
    const run = async (fused: boolean) => {
      const start = tf.memory().numTensors
      const initial = init.map((v, i) => tf.tensor(v, i === 0 ? [40, 7] : [7]))
      const vars = initial.map((t, i) => tf.variable(t, true, `adam-test-${fused}-${i}`))
      tf.dispose(initial)
      const goals = target.map((v, i) => tf.tensor(v, i === 0 ? [40, 7] : [7]))
      const opt = fused ? makeOptimizer({ type: "adam", learningRate: 0.05 }) : tfjsAdam({ learningRate: 0.05, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 })
      const firstClone = tf.clone(vars[0]!)
      const firstValues = Float32Array.from(await firstClone.data())
      let dispatches = 0
      for (let s = 0; s < 5; s++) {
        const { value, grads } = tf.variableGrads(() => tf.addN(vars.map((v, i) => tf.sum(tf.square(tf.sub(v, goals[i]!))))) as tf.Scalar, vars)
        let count = 0
        pass.dispatchWorkgroups = function (this: unknown, ...a: Array<number>) {
          count++
          return dispatch.apply(this, a)
        }
        opt.applyGradients(grads)
        pass.dispatchWorkgroups = dispatch
        dispatches = count
        tf.dispose([value, ...Object.values(grads)])
      }
      const values = await Promise.all(vars.map(async (v) => Float32Array.from(await v.data())))
      assert.deepStrictEqual(Float32Array.from(await firstClone.data()), firstValues)
      disposeOptimizer(opt)
      tf.dispose([...vars, ...goals, firstClone])
      assert.strictEqual(tf.memory().numTensors, start)
      return { values, dispatches }
    }
    const fused = await run(true)
    const plain = await run(false)
    assert.strictEqual(fused.dispatches, 2)
    assert.isAbove(plain.dispatches, 10)
    fused.values.forEach((v, i) => v.forEach((x, j) => assert.approximately(x, plain.values[i]![j]!, 1e-5)))
  })

  it("matrix products (all transposes) match cpu", async () => {
    const [m, k, n] = [33, 70, 17]
    const a = random(m * k, 1)
    const b = random(k * n, 2)
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true]
    ] as const) {
      const run = (backend: "cpu" | "webgpu") =>
        runOn(backend, () => initBackend(backend), () => tf.matMul(tf.tensor2d(a, ta ? [k, m] : [m, k]), tf.tensor2d(b, tb ? [n, k] : [k, n]), ta, tb))
      assertClose(await run("webgpu"), await run("cpu"), 1e-3)
    }
  })

  it("trains a tiny MLP like cpu from the same seed, leaking nothing", async () => {
    const rng = makeRng(4)
    const n = 256
    const y = Int32Array.from({ length: n }, () => rng.int(2))
    const x = Float32Array.from({ length: n * 8 }, (_, i) => (y[Math.floor(i / 8)] === 1 ? 1 : -1) + rng.normal())
    const o: TrainOptions = {
      spec: decodeModelSpec({ type: "mlp", hidden: [16] }),
      featureShape: [8],
      numClasses: 2,
      train: { x, y },
      loss: (logits, labels) => tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits) as tf.Scalar),
      optimizer: { type: "adam", learningRate: 0.01 },
      batchSize: 32,
      epochs: 3,
      seed: 1,
      checkpoint: "last"
    }
    await initBackend("cpu")
    const plain = await train(o)
    await initBackend("webgpu")
    const before = tf.memory().numTensors
    const gpu = await train(o)
    assert.strictEqual(tf.memory().numTensors, before)
    assert.strictEqual(gpu.info.backend, "webgpu")
    gpu.history.forEach((h, i) => assert.approximately(h.trainLoss, plain.history[i]!.trainLoss, 1e-2))
  })

  it("the CLI runs a pipeline on webgpu and records the backend", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "distillery-webgpu-"))
    // The two-moons pipeline cut to 2 epochs a training: a software adapter is slow.
    const file = path.join(dir, "moons.yaml")
    fs.writeFileSync(file, fs.readFileSync("pipelines/two-moons-kd.yaml", "utf8").replace(/epochs: 30/g, "epochs: 2"))
    const store = path.join(dir, "store")
    const run = await cli("run", file, "--store", store, "--backend", "webgpu")
    assert.strictEqual(run.code, 0, run.stderr)
    assert.match(run.stdout, /9 nodes, 9 executed, 0 cached/)
    assert.match(run.stdout, /eval_student\s+student\s+0\.\d+/)
    const backend = await cli("query", "SELECT backend FROM runs", "--store", store, "--format", "csv")
    assert.strictEqual(backend.stdout.trim().split(/\r?\n/)[1], "webgpu")
  })
})
