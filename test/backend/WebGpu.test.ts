import { assert, afterAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { BackendError, initBackend, probeWebGpu } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import { decodeModelSpec } from "../../src/models/ModelSpec.js"
import type { TrainOptions } from "../../src/train/Trainer.js"
import { train } from "../../src/train/Trainer.js"

// Probed once: with no GPU (as on CI) the suite below is skipped and the reason printed.
const probe = await probeWebGpu()
if (!probe.ok) console.warn(`skipping the webgpu tests: ${probe.reason}`)

const random = (n: number, seed: number): Float32Array => {
  const rng = makeRng(seed)
  return Float32Array.from({ length: n }, () => 2 * rng.next() - 1)
}

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

  it("initBackend('webgpu') and auto choose it (without tfjs-node)", async () => {
    assert.strictEqual(await initBackend("webgpu"), "webgpu")
    assert.strictEqual(tf.getBackend(), "webgpu")
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
      const run = async (backend: "cpu" | "webgpu") => {
        await initBackend(backend)
        const before = tf.memory().numTensors
        const t = tf.tidy(() => tf.matMul(tf.tensor2d(a, ta ? [k, m] : [m, k]), tf.tensor2d(b, tb ? [n, k] : [k, n]), ta, tb))
        const v = Float32Array.from(await t.data())
        t.dispose()
        assert.strictEqual(tf.memory().numTensors, before)
        return v
      }
      const [g, c] = [await run("webgpu"), await run("cpu")]
      g.forEach((v, i) => assert.approximately(v, c[i]!, 1e-3))
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
})
