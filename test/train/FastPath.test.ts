import { assert, afterAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { activeNativeKernels, initBackend } from "../../src/backend/Backend.js"
import { loadNative, setNativeThreads } from "../../src/backend/Native.js"
import { requirement } from "../fixtures/requirements.js"
import { makeRng } from "../../src/domain/Random.js"
import { decodeModelSpec } from "../../src/models/ModelSpec.js"
import { makeNativeAdam } from "../../src/backend/kernels/NativeAdam.js"
import type { TrainOptions, TrainResult } from "../../src/train/Contract.js"
import { train } from "../../src/train/Trainer.js"

const native = loadNative()
requirement("the native addon (for the native training tests)", native)

const D = 100
const C = 5

/** C Gaussian clusters in D dimensions, centres U(-1, 1), sd 1: learnable, not trivially. */
const clusters = (n: number, seed: number) => {
  const centres = makeRng(99)
  const mu = Float32Array.from({ length: C * D }, () => 2 * centres.next() - 1)
  const rng = makeRng(seed)
  const x = new Float32Array(n * D)
  const y = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    y[i] = rng.int(C)
    for (let j = 0; j < D; j++) x[i * D + j] = mu[y[i]! * D + j]! + rng.normal()
  }
  return { x, y }
}

const crossEntropy = (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar =>
  tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, C), logits) as tf.Scalar)

const trainSet = clusters(512, 1)
const valSet = clusters(256, 2)

const options = (over: Partial<TrainOptions> = {}): TrainOptions => ({
  // Products of 128 x 100 x 128 and up: past the size where the native SGEMM splits work between threads.
  spec: decodeModelSpec({ type: "mlp", hidden: [128, 64] }),
  featureShape: [D],
  numClasses: C,
  train: trainSet,
  validation: valSet,
  loss: crossEntropy,
  optimizer: { type: "adam", learningRate: 0.003 },
  batchSize: 128,
  epochs: 3,
  seed: 7,
  checkpoint: "last",
  ...over
})

const sameBits = (a: TrainResult, b: TrainResult): boolean =>
  a.weights.every((w, i) => w.values.every((v, j) => Object.is(v, b.weights[i]!.values[j])))

describe.skipIf(!native.ok)("the native training path", () => {
  afterAll(async () => {
    setNativeThreads(2)
    await initBackend("cpu")
  })

  it("fused Adam takes the steps tf.train.adam takes", async () => {
    await initBackend("native")
    const addon = activeNativeKernels()
    assert.isDefined(addon)
    const rng = makeRng(3)
    const init = Float32Array.from({ length: 300 }, () => rng.normal())
    const grads = Array.from({ length: 5 }, () => Float32Array.from({ length: 300 }, () => rng.normal()))
    const hyper = { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }
    const before = tf.memory().numTensors
    const a = tf.tidy(() => tf.variable(tf.tensor2d(init, [30, 10])))
    const b = tf.tidy(() => tf.variable(tf.tensor2d(init, [30, 10])))
    const fused = makeNativeAdam(addon!, hyper)
    const reference = tf.train.adam(hyper.learningRate, hyper.beta1, hyper.beta2, hyper.epsilon)
    for (const g of grads) {
      tf.tidy(() => {
        fused.applyGradients({ [a.name]: tf.tensor2d(g, [30, 10]) })
        reference.applyGradients([{ name: b.name, tensor: tf.tensor2d(g, [30, 10]) }])
      })
    }
    const [va, vb] = [a.dataSync(), b.dataSync()]
    let worst = 0
    for (let i = 0; i < va.length; i++) worst = Math.max(worst, Math.abs(va[i]! - vb[i]!))
    assert.isAtMost(worst, 1e-5)
    assert.notStrictEqual(va[0], init[0])
    fused.dispose()
    reference.dispose()
    a.dispose()
    b.dispose()
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("trains like plain tfjs from the same seed: losses and accuracy agree", async () => {
    await initBackend("cpu")
    const plain = await train(options())
    assert.strictEqual(plain.info.backend, "cpu")
    await initBackend("native")
    const fast = await train(options())
    assert.strictEqual(fast.info.backend, "native")
    fast.history.forEach((h, i) => {
      const p = plain.history[i]!
      assert.approximately(h.trainLoss, p.trainLoss, 2e-3 * Math.max(1, p.trainLoss), `train loss, epoch ${h.epoch}`)
      assert.approximately(h.valLoss!, p.valLoss!, 5e-3 * Math.max(1, p.valLoss!), `val loss, epoch ${h.epoch}`)
      assert.approximately(h.valAccuracy!, p.valAccuracy!, 0.02, `val accuracy, epoch ${h.epoch}`)
    })
    assert.isAbove(fast.history[2]!.valAccuracy!, 0.8)
  })

  it("is deterministic, and gives the same bits with 1 and 2 threads", async () => {
    await initBackend("native")
    setNativeThreads(2)
    const o = options({ spec: decodeModelSpec({ type: "mlp", hidden: [128, 64], dropout: 0.2 }), epochs: 2 })
    const [a, b] = [await train(o), await train(o)]
    setNativeThreads(1)
    const c = await train(o)
    assert.isTrue(sameBits(a, b))
    assert.isTrue(sameBits(a, c))
  })

  for (const optimizer of [
    { type: "adam", learningRate: 0.003 },
    { type: "adam", learningRate: 0.003, weightDecay: 0.01 },
    { type: "sgd", learningRate: 0.05, momentum: 0.9 }
  ] as const) {
    it(`keeps tf.memory().numTensors flat across steps and after (${JSON.stringify(optimizer)})`, async () => {
      await initBackend("native")
      const before = tf.memory().numTensors
      const counts: Array<number> = []
      const r = await train(options({ optimizer, onBatchEvery: 1, onBatch: () => counts.push(tf.memory().numTensors) }))
      assert.strictEqual(counts.length, 3 * 4)
      assert.isTrue(counts.every((c) => c === counts[0]), counts.join(","))
      assert.strictEqual(tf.memory().numTensors, before)
      assert.isAbove(r.history[2]!.valAccuracy!, 0.8)
    })
  }

  it("a best checkpoint is not changed by later steps (Adam writes new tensors, never in place)", async () => {
    await initBackend("native")
    const o = options({ epochs: 3, validation: { x: valSet.x.slice(0, 0), y: new Int32Array(0) } })
    const onlyOne = await train({ ...o, epochs: 1 })
    const best = await train({ ...o, checkpoint: "best", earlyStopping: undefined })
    if (best.info.bestEpoch === 1) assert.isTrue(sameBits(best, onlyOne))
    else assert.isFalse(sameBits(best, onlyOne))
  })

  it("trains a small CNN (convolutions on wasm, dense layers native)", async () => {
    await initBackend("native")
    const rng = makeRng(5)
    const n = 64
    const x = Float32Array.from({ length: n * 64 }, () => rng.next())
    const y = Int32Array.from({ length: n }, (_, i) => i % 2)
    for (let i = 0; i < n; i++) if (y[i] === 1) for (let j = 0; j < 32; j++) x[i * 64 + j]! += 1
    const before = tf.memory().numTensors
    const r = await train({
      spec: decodeModelSpec({ type: "cnn", channels: [4], dense: [8], imageShape: [8, 8, 1] }),
      featureShape: [64],
      numClasses: 2,
      train: { x, y },
      loss: (logits, labels) => tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 2), logits) as tf.Scalar),
      optimizer: { type: "adam", learningRate: 0.01 },
      batchSize: 16,
      epochs: 5,
      seed: 1,
      checkpoint: "last"
    })
    assert.isBelow(r.history[4]!.trainLoss, r.history[0]!.trainLoss)
    assert.strictEqual(tf.memory().numTensors, before)
  })
})
