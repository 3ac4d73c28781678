import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import { hardLabelCrossEntropy } from "../../src/losses/Objective.js"
import { decodeModelSpec } from "../../src/models/ModelSpec.js"
import type { ExtraTerm } from "../../src/train/ExtraTerms.js"
import { combineTerms, hintTerm, relationTerm } from "../../src/train/ExtraTerms.js"
import type { TrainOptions, TrainResult } from "../../src/train/Contract.js"
import { train } from "../../src/train/Trainer.js"

const D = 4
const N = 96

/** Two Gaussian blobs at ±1 in D dimensions. */
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

const data = blobs(N, 1)

/** "Teacher features": a fixed nonlinear map of each row to 6 values, so a student can learn to match them. */
const teacherFeatures = (() => {
  const width = 6
  const values = new Float32Array(N * width)
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < width; j++) values[i * width + j] = Math.tanh(data.x[i * D + (j % D)]! * (j + 1) * 0.5)
  }
  return { values, width }
})()

const options = (extra?: ExtraTerm, over: Partial<TrainOptions> = {}): TrainOptions => ({
  spec: decodeModelSpec({ type: "mlp", hidden: [8, 5] }),
  featureShape: [D],
  numClasses: 2,
  train: data,
  loss: (logits, labels) => hardLabelCrossEntropy(logits, labels),
  optimizer: { type: "adam", learningRate: 0.05 },
  batchSize: 16,
  epochs: 6,
  seed: 3,
  checkpoint: "last",
  ...(extra !== undefined ? { extra } : {}),
  ...over
})

const sameWeights = (a: TrainResult, b: TrainResult): boolean =>
  a.weights.every((w, i) => w.values.every((v, j) => Object.is(v, b.weights[i]!.values[j])))

/** An objective of 0 (that still depends on the logits), so that the train loss is the extra term alone. */
const termOnly: TrainOptions["loss"] = (logits, labels) => tf.mul(hardLabelCrossEntropy(logits, labels), 0) as tf.Scalar

beforeAll(async () => {
  await initBackend("cpu")
})

describe("the trainer's extra hook", () => {
  it("changes nothing when the term is 0 and has no variables", async () => {
    const zero: ExtraTerm = { variables: [], loss: () => tf.scalar(0), dispose: () => {} }
    const plain = await train(options())
    const withZero = await train(options(zero))
    assert.isTrue(sameWeights(plain, withZero))
  })

  it("passes the forward pass's features and the batch's row indices", async () => {
    const seen = new Set<number>()
    let layers: Array<string> = []
    const spy: ExtraTerm = {
      variables: [],
      loss: (forward, rows) => {
        layers = Object.keys(forward.features)
        for (const r of rows.dataSync()) seen.add(r)
        assert.strictEqual(forward.features.hidden2!.shape[0], rows.shape[0])
        return tf.scalar(0)
      },
      dispose: () => {}
    }
    await train(options(spy, { epochs: 1 }))
    assert.sameMembers(layers, ["hidden1", "hidden2", "penultimate"])
    // One epoch visits every training row once.
    assert.strictEqual(seen.size, N)
    assert.strictEqual(Math.min(...seen), 0)
    assert.strictEqual(Math.max(...seen), N - 1)
  })
})

describe("hint term (FitNets)", () => {
  it("learns its projection jointly with the student, so the hint loss falls; frees every tensor", async () => {
    const before = tf.memory().numTensors
    const term = hintTerm({ teacher: teacherFeatures, studentLayer: "hidden1", studentWidth: 8, loss: "mse", weight: 1, seed: 1 })
    const kernelBefore = term.variables[0]!.dataSync().slice()
    const result = await train(options(term, { loss: termOnly, epochs: 15 }))
    const kernelAfter = term.variables[0]!.dataSync().slice()
    term.dispose()
    const losses = result.history.map((h) => h.trainLoss)
    assert.isBelow(losses[losses.length - 1]!, losses[0]! * 0.6, `hint loss did not fall: ${losses.join(", ")}`)
    assert.isTrue(kernelAfter.some((v, i) => v !== kernelBefore[i]), "the projection was not trained")
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("cosine hints fall too, and combine with a relation term", async () => {
    const before = tf.memory().numTensors
    const hint = hintTerm({ teacher: teacherFeatures, studentLayer: "hidden2", studentWidth: 5, loss: "cosine", weight: 1, seed: 1 })
    const relation = relationTerm({ teacher: teacherFeatures, studentLayer: "penultimate", loss: "both", weight: 1 })
    const term = combineTerms([hint, relation])!
    assert.strictEqual(term.variables.length, 2)
    const result = await train(options(term, { loss: termOnly, epochs: 10 }))
    term.dispose()
    const losses = result.history.map((h) => h.trainLoss)
    assert.isBelow(losses[losses.length - 1]!, losses[0]!, `loss did not fall: ${losses.join(", ")}`)
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("names the student's layers when asked for one it does not have", async () => {
    const term = hintTerm({ teacher: teacherFeatures, studentLayer: "hidden7", studentWidth: 8, loss: "mse", weight: 1, seed: 1 })
    try {
      const error = await train(options(term, { epochs: 1 })).then(() => undefined, (e: Error) => e)
      assert.match(String(error?.message), /no layer 'hidden7'; its layers are: hidden1, hidden2, penultimate/)
    } finally {
      term.dispose()
    }
  })
})

describe("relation term (RKD)", () => {
  for (const loss of ["distance", "angle"] as const) {
    it(`${loss}: the relational loss falls and no tensor leaks`, async () => {
      const before = tf.memory().numTensors
      const term = relationTerm({ teacher: teacherFeatures, studentLayer: "penultimate", loss, weight: 1 })
      const result = await train(options(term, { loss: termOnly, epochs: 10 }))
      term.dispose()
      const losses = result.history.map((h) => h.trainLoss)
      assert.isBelow(losses[losses.length - 1]!, losses[0]!, `loss did not fall: ${losses.join(", ")}`)
      assert.strictEqual(tf.memory().numTensors, before)
    })
  }

  it("is 0 for a batch of one row (no pairs) instead of failing", async () => {
    const term = relationTerm({ teacher: teacherFeatures, studentLayer: "penultimate", loss: "both", weight: 1 })
    // 96 rows in batches of 19: the last batch has one row.
    const result = await train(options(term, { batchSize: 19, epochs: 1 }))
    term.dispose()
    assert.isTrue(Number.isFinite(result.history[0]!.trainLoss))
  })
})
