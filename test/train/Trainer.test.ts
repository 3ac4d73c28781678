import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import type { ModelSpec } from "../../src/models/ModelSpec.js"
import { decodeModelSpec } from "../../src/models/ModelSpec.js"
import type { TeacherBatch, TrainOptions, TrainResult } from "../../src/train/Contract.js"
import { train } from "../../src/train/Trainer.js"

const D = 4

/** Two Gaussian blobs at ±(1, 1, 1, 1), sd 0.5: linearly separable up to a few percent. */
const blobs = (n: number, seed: number) => {
  const rng = makeRng(seed)
  const x = new Float32Array(n * D)
  const y = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    y[i] = rng.int(2)
    for (let j = 0; j < D; j++) x[i * D + j] = (y[i] === 1 ? 1 : -1) + 0.5 * rng.normal()
  }
  return { x, y }
}

/** Mean cross-entropy over the labelled rows (the usual hard-label objective). */
const crossEntropy = (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar =>
  tf.tidy(() => {
    const labelled = tf.cast(tf.greaterEqual(labels, 0), "float32")
    const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.maximum(labels, tf.zerosLike(labels)), logits.shape[1])), 1))
    return tf.div(tf.sum(tf.mul(nll, labelled)), tf.maximum(tf.sum(labelled), 1)) as tf.Scalar
  })

const mlp: ModelSpec = decodeModelSpec({ type: "mlp", hidden: [8], dropout: 0.1 })
const trainSet = blobs(192, 1)
const valSet = blobs(64, 2)

const options = (over: Partial<TrainOptions> = {}): TrainOptions => ({
  spec: mlp,
  featureShape: [D],
  numClasses: 2,
  train: trainSet,
  validation: valSet,
  loss: crossEntropy,
  optimizer: { type: "adam", learningRate: 0.05 },
  batchSize: 32,
  epochs: 4,
  seed: 1,
  checkpoint: "last",
  ...over
})

const sameWeights = (a: TrainResult, b: TrainResult): boolean =>
  a.weights.length === b.weights.length &&
  a.weights.every((w, i) => w.name === b.weights[i]!.name && w.values.every((v, j) => Object.is(v, b.weights[i]!.values[j])))

beforeAll(async () => {
  await initBackend("cpu")
})

describe("train", () => {
  it("learns a separable 2-class problem and reports each epoch", async () => {
    const reports: Array<number> = []
    const r = await train(options({ epochs: 5, onEpoch: (e) => reports.push(e.epoch) }))
    assert.deepStrictEqual(reports, [1, 2, 3, 4, 5])
    const last = r.history[r.history.length - 1]!
    assert.isAbove(last.valAccuracy!, 0.95)
    assert.isBelow(last.valLoss!, r.history[0]!.valLoss! + 1e-6)
    assert.isBelow(last.trainLoss, 0.3)
    assert.isAbove(last.examplesPerSecond, 0)
    assert.deepStrictEqual(
      r.weights.map((w) => w.name),
      ["hidden1/kernel", "hidden1/bias", "output/kernel", "output/bias"]
    )
    assert.strictEqual(r.info.epochsRun, 5)
    assert.strictEqual(r.info.backend, "cpu")
  })

  for (const backend of ["cpu", "wasm"] as const) {
    it(`is deterministic on ${backend}: same seed, same bits; another seed, other weights`, async () => {
      await initBackend(backend)
      try {
        const o = options({ epochs: 2, spec: decodeModelSpec({ type: "mlp", hidden: [8], dropout: 0.3, inputDropout: 0.2 }) })
        const [a, b, c] = [await train(o), await train(o), await train({ ...o, seed: 2 })]
        assert.isTrue(sameWeights(a, b))
        assert.isFalse(sameWeights(a, c))
        assert.strictEqual(a.info.backend, backend)
      } finally {
        await initBackend("cpu")
      }
    })
  }

  it("stops early when the metric stops improving", async () => {
    // A zero learning rate never improves on epoch 1.
    const r = await train(
      options({ epochs: 10, optimizer: { type: "sgd", learningRate: 0 }, earlyStopping: { patience: 2, metric: "val_accuracy" } })
    )
    assert.isTrue(r.info.stoppedEarly)
    assert.strictEqual(r.info.epochsRun, 3)
    assert.strictEqual(r.history.length, 3)
    assert.strictEqual(r.info.bestEpoch, 1)
    assert.strictEqual(r.info.selectedOn, "val_accuracy")
  })

  it("checkpoint best returns the best epoch's weights, last the final ones", async () => {
    // Validation labels are the opposite of the training labels, so validation loss rises from epoch 1.
    const flipped = { x: valSet.x, y: valSet.y.map((v) => 1 - v) }
    const o = options({ validation: flipped, epochs: 4 })
    const before = tf.memory().numTensors
    const best = await train({ ...o, checkpoint: "best" })
    assert.strictEqual(tf.memory().numTensors, before)
    const last = await train({ ...o, checkpoint: "last" })
    const firstEpoch = await train({ ...o, epochs: 1, checkpoint: "last" })
    assert.strictEqual(best.info.bestEpoch, 1)
    assert.strictEqual(best.info.epoch, 1)
    assert.strictEqual(best.info.checkpoint, "best")
    assert.strictEqual(last.info.epoch, 4)
    assert.strictEqual(last.info.bestEpoch, 1)
    assert.isTrue(sameWeights(best, firstEpoch))
    assert.isFalse(sameWeights(best, last))
  })

  it("without validation, best is judged on the training loss", async () => {
    const { validation: _, ...o } = options({ checkpoint: "best" })
    const r = await train(o)
    assert.strictEqual(r.info.selectedOn, "train_loss")
    assert.isUndefined(r.history[0]!.valLoss)
  })

  it("an abort rejects with the signal's reason and leaks nothing", async () => {
    const before = tf.memory().numTensors
    const controller = new AbortController()
    let batches = 0
    const run = train(
      options({
        epochs: 50,
        signal: controller.signal,
        onBatchEvery: 1,
        onBatch: () => {
          if (++batches === 3) controller.abort()
        }
      })
    )
    let error: unknown
    try {
      await run
    } catch (e) {
      error = e
    }
    assert.strictEqual((error as Error).name, "AbortError")
    assert.strictEqual(batches, 3)
    assert.strictEqual(tf.memory().numTensors, before)
  })

  for (const optimizer of [
    { type: "adam", learningRate: 0.01, weightDecay: 0.01 },
    { type: "sgd", learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 },
    { type: "sgd", learningRate: 0.1 }
  ] as const) {
    it(`keeps tf.memory().numTensors flat across steps and after (${JSON.stringify(optimizer)})`, async () => {
      const before = tf.memory().numTensors
      const counts: Array<number> = []
      const r = await train(
        options({ optimizer, epochs: 3, onBatchEvery: 1, onBatch: () => counts.push(tf.memory().numTensors) })
      )
      assert.strictEqual(counts.length, 3 * 6)
      assert.isTrue(counts.every((c) => c === counts[0]), counts.join(","))
      assert.strictEqual(tf.memory().numTensors, before)
      assert.isAbove(r.history[2]!.valAccuracy!, 0.9)
    })
  }

  it("passes each batch the teacher targets of its own rows (dense and top-k)", async () => {
    const n = trainSet.y.length
    // Teacher logits that encode the row's label: argmax = label.
    const logits = new Float32Array(n * 2)
    trainSet.y.forEach((y, i) => (logits[i * 2 + y] = 5))
    const indices = Int32Array.from(trainSet.y)
    const values = new Float32Array(n).fill(5)
    const tail = new Float32Array(n).fill(0)
    let mismatches = 0
    let seen = 0
    const check = (labels: tf.Tensor1D, teacher?: TeacherBatch) => {
      const y = labels.dataSync()
      const t = teacher === undefined ? undefined : "logits" in teacher ? tf.argMax(teacher.logits, 1) : tf.squeeze(teacher.topk.indices, [1])
      assert.isDefined(t)
      const tv = t!.dataSync()
      if ("topk" in teacher!) assert.deepStrictEqual(teacher.topk.tailLogSumExp.shape, [y.length])
      y.forEach((v, i) => (mismatches += v === tv[i] ? 0 : 1))
      seen += y.length
    }
    for (const teacher of [{ logits }, { topk: { k: 1, indices, values, tailLogSumExp: tail } }]) {
      mismatches = 0
      seen = 0
      await train(
        options({
          epochs: 1,
          teacher,
          loss: (s, labels, t) => {
            check(labels, t)
            return crossEntropy(s, labels)
          }
        })
      )
      assert.strictEqual(seen, n)
      assert.strictEqual(mismatches, 0)
    }
  })

  it("starts from initial weights when given", async () => {
    const first = await train(options({ epochs: 1 }))
    const again = await train(options({ epochs: 1, optimizer: { type: "sgd", learningRate: 0 }, initial: { weights: first.weights } }))
    assert.isTrue(sameWeights(first, again))
  })

  it("rejects data that does not fit the feature shape", async () => {
    let error: unknown
    try {
      await train(options({ featureShape: [5] }))
    } catch (e) {
      error = e
    }
    assert.match(String(error), /train.x has 768 values; expected 192 rows x 5/)
  })

  it("trains a small CNN on wasm (conv backprop through the fixed kernels)", async () => {
    await initBackend("wasm")
    try {
      // 8x8 images, class 1 brighter in the top half.
      const rng = makeRng(3)
      const n = 96
      const x = new Float32Array(n * 64)
      const y = new Int32Array(n)
      for (let i = 0; i < n; i++) {
        y[i] = rng.int(2)
        for (let p = 0; p < 64; p++) x[i * 64 + p] = 0.3 * rng.next() + (p < 32 === (y[i] === 1) ? 0.7 : 0)
      }
      const before = tf.memory().numTensors
      const r = await train(
        options({
          spec: decodeModelSpec({ type: "cnn", channels: [4], dense: [8], imageShape: [8, 8, 1] }),
          featureShape: [64],
          train: { x, y },
          validation: { x, y },
          epochs: 4,
          batchSize: 16,
          optimizer: { type: "adam", learningRate: 0.02 }
        })
      )
      assert.strictEqual(tf.memory().numTensors, before)
      assert.isAbove(r.history[r.history.length - 1]!.valAccuracy!, 0.9)
    } finally {
      await initBackend("cpu")
    }
  })
})
