import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { loadNative } from "../../src/backend/Native.js"
import { makeRng } from "../../src/domain/Random.js"
import { decodeModelSpec } from "../../src/models/ModelSpec.js"
import { networkFromWeights, predictLogits } from "../../src/models/Network.js"
import type { MutualOptions, MutualResult } from "../../src/train/Mutual.js"
import { trainMutual } from "../../src/train/Mutual.js"
import { logSoftmaxRows } from "../../src/nodes/evaluate.js"

const D = 4

/** Three overlapping Gaussian blobs in D dimensions, so that students disagree on some rows. */
const blobs = (n: number, seed: number) => {
  const rng = makeRng(seed)
  const x = new Float32Array(n * D)
  const y = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    y[i] = rng.int(3)
    for (let j = 0; j < D; j++) x[i * D + j] = (j % 3 === y[i] ? 1.2 : 0) + 0.7 * rng.normal()
  }
  return { x, y }
}

const trainSet = blobs(160, 1)
const valSet = blobs(80, 2)
const students = [decodeModelSpec({ type: "mlp", hidden: [8] }), decodeModelSpec({ type: "mlp", hidden: [12], dropout: 0.1 })]

const options = (over: Partial<MutualOptions> = {}): MutualOptions => ({
  students,
  featureShape: [D],
  numClasses: 3,
  train: trainSet,
  validation: valSet,
  optimizer: { type: "adam", learningRate: 0.03 },
  batchSize: 32,
  epochs: 6,
  seed: 5,
  weight: 1,
  temperature: 1,
  checkpoint: "last",
  ...over
})

/** Mean KL(student 0 || student 1) over the validation rows: how far apart the two students are. */
const disagreement = async (r: MutualResult): Promise<number> => {
  const n = valSet.y.length
  const logits = await Promise.all(r.students.map(async (s, k) => {
    const net = networkFromWeights(students[k]!, [D], 3, s.weights)
    try {
      return logSoftmaxRows(await predictLogits(net, valSet.x, n), n, 3)
    } finally {
      net.dispose()
    }
  }))
  let kl = 0
  for (let j = 0; j < n * 3; j++) kl += Math.exp(logits[0]![j]!) * (logits[0]![j]! - logits[1]![j]!)
  return kl / n
}

beforeAll(async () => {
  await initBackend("cpu")
})

describe("trainMutual", () => {
  it("trains every student (the loss falls, validation accuracy is high) and frees every tensor", async () => {
    const before = tf.memory().numTensors
    const r = await trainMutual(options({ epochs: 10 }))
    assert.strictEqual(tf.memory().numTensors, before)
    assert.strictEqual(r.students.length, 2)
    assert.strictEqual(r.history.length, 10)
    for (let k = 0; k < 2; k++) {
      const curve = r.history.map((h) => h.students[k]!.trainLoss)
      assert.isBelow(curve[curve.length - 1]!, curve[0]!, `student ${k}'s loss did not fall: ${curve.join(", ")}`)
      assert.isAbove(r.students[k]!.info.valAccuracy, 0.6)
    }
    // The best student is the one with the highest validation accuracy.
    const accuracies = r.students.map((s) => s.info.valAccuracy)
    assert.strictEqual(r.best, accuracies.indexOf(Math.max(...accuracies)))
  })

  it("is deterministic for a seed and starts each student from its own initialisation", async () => {
    const a = await trainMutual(options({ epochs: 2 }))
    const b = await trainMutual(options({ epochs: 2 }))
    a.students.forEach((s, k) =>
      s.weights.forEach((w, i) => assert.deepStrictEqual(w.values, b.students[k]!.weights[i]!.values))
    )
    const same = await trainMutual(options({ students: [students[0]!, students[0]!], epochs: 1 }))
    assert.notDeepEqual(same.students[0]!.weights[0]!.values, same.students[1]!.weights[0]!.values)
  })

  it("the mimicry term pulls the students together", async () => {
    const apart = await disagreement(await trainMutual(options({ weight: 0 })))
    const together = await disagreement(await trainMutual(options({ weight: 3 })))
    assert.isBelow(together, apart * 0.7, `KL between students: weight 3 ${together}, weight 0 ${apart}`)
  })

  it("best checkpoints come from each student's own best validation epoch", async () => {
    const r = await trainMutual(options({ checkpoint: "best", epochs: 5 }))
    r.students.forEach((s, k) => {
      const losses = r.history.map((h) => h.students[k]!.valLoss!)
      assert.strictEqual(s.info.bestEpoch, losses.indexOf(Math.min(...losses)) + 1)
      assert.strictEqual(s.info.epoch, s.info.bestEpoch)
      assert.strictEqual(s.info.valAccuracy, r.history[s.info.bestEpoch - 1]!.students[k]!.valAccuracy)
    })
  })

  it("stops on abort with the signal's reason and frees every tensor", async () => {
    const before = tf.memory().numTensors
    const controller = new AbortController()
    const reason = new Error("stop")
    const run = trainMutual(options({ signal: controller.signal, onBatch: () => controller.abort(reason), onBatchEvery: 1 }))
    const error = await run.then(() => undefined, (e: unknown) => e)
    assert.strictEqual(error, reason)
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("records the backend in use as the trainer does (native, not wasm, when the native kernels run)", async () => {
    const backends = loadNative().ok ? (["wasm", "native"] as const) : (["wasm"] as const)
    try {
      for (const backend of backends) {
        const used = await initBackend(backend)
        const r = await trainMutual(options({ epochs: 1 }))
        r.students.forEach((s) => assert.strictEqual(s.info.backend, used))
      }
    } finally {
      await initBackend("cpu")
    }
  })

  it("needs two students", async () => {
    const error = await trainMutual(options({ students: [students[0]!] })).then(() => undefined, (e: Error) => e)
    assert.match(String(error?.message), /at least 2 students/)
  })
})
