import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import { objectiveLoss, ObjectiveSpec } from "../../src/losses/Objective.js"
import { Schema } from "effect"
import { decodeModelSpec } from "../../src/models/ModelSpec.js"
import { networkFromWeights } from "../../src/models/Network.js"
import { buildFusedMlp } from "../../src/backend/webgpu/FusedMlp.js"
import type { TrainOptions, TrainResult } from "../../src/train/Contract.js"
import { trainFusedMlp } from "../../src/train/FusedMlp.js"
import { evaluate } from "../../src/train/Score.js"
import { train } from "../../src/train/Trainer.js"
import { probeTestAdapter } from "../fixtures/webgpu.js"

const probe = await probeTestAdapter("fused webgpu MLP tests")

const d = 12
const classes = 3

/** Three well separated classes in d dimensions; `unlabelled` of the rows get label -1. */
const dataset = (n: number, seed: number, unlabelled = 0) => {
  const rng = makeRng(seed)
  const y = Int32Array.from({ length: n }, () => rng.int(classes))
  const x = Float32Array.from({ length: n * d }, (_, i) => {
    const row = Math.floor(i / d)
    return (i % d) % classes === y[row] ? 1.5 + 0.5 * rng.normal() : 0.5 * rng.normal()
  })
  // Teacher logits: right most of the time, with some spread.
  const logits = Float32Array.from({ length: n * classes }, (_, i) => (i % classes === y[Math.floor(i / classes)] ? 2 : 0) + rng.normal())
  const labels = Int32Array.from(y, (v) => (rng.next() < unlabelled ? -1 : v))
  return { x, y: labels, clean: y, logits }
}

/** A spec with the defaults filled, as the train node decodes it. */
const objective = (o: Partial<ObjectiveSpec>): ObjectiveSpec => Schema.decodeSync(ObjectiveSpec)(o)

const options = (spec: ObjectiveSpec, extra: Partial<TrainOptions> = {}): TrainOptions => {
  const data = dataset(200, 3, 0.3)
  const val = dataset(60, 4)
  return {
    spec: decodeModelSpec({ type: "mlp", hidden: [16, 12] }),
    featureShape: [d],
    numClasses: classes,
    train: { x: data.x, y: data.y },
    validation: { x: val.x, y: val.y },
    teacher: { logits: data.logits },
    loss: (s, y, t) => objectiveLoss(spec, s, y, t),
    objective: spec,
    optimizer: { type: "adam", learningRate: 0.01 },
    batchSize: 32,
    epochs: 3,
    seed: 7,
    checkpoint: "last",
    ...extra
  }
}

/** Runs `train` with the options as given and asserts it leaves no tensor behind. */
const run = async (o: TrainOptions): Promise<TrainResult> => {
  const before = tf.memory().numTensors
  const r = await train(o)
  assert.strictEqual(tf.memory().numTensors, before)
  return r
}

/** The generic tfjs loop on the same backend: without `objective` the fast path is never asked. */
const generic = (o: TrainOptions): Promise<TrainResult> => {
  const { objective: _, ...rest } = o
  return run(rest)
}

type DispatchProto = { dispatchWorkgroups: (...a: Array<number>) => void }
const passPrototype = (): DispatchProto =>
  (globalThis as unknown as { GPUComputePassEncoder: { prototype: DispatchProto } }).GPUComputePassEncoder.prototype

const assertClose = (fused: TrainResult, plain: TrainResult, weightTolerance: number) => {
  assert.strictEqual(fused.info.backend, "webgpu")
  assert.strictEqual(fused.history.length, plain.history.length)
  fused.history.forEach((h, i) => {
    const p = plain.history[i]!
    assert.approximately(h.trainLoss, p.trainLoss, 1e-3 * Math.abs(p.trainLoss), `epoch ${i + 1} train loss`)
    assert.approximately(h.valLoss!, p.valLoss!, 1e-3 * Math.abs(p.valLoss!), `epoch ${i + 1} val loss`)
    assert.strictEqual(h.valAccuracy, p.valAccuracy)
  })
  assert.deepStrictEqual(
    fused.weights.map((w) => [w.name, w.shape]),
    plain.weights.map((w) => [w.name, w.shape])
  )
  fused.weights.forEach((w, i) => w.values.forEach((v, j) => assert.approximately(v, plain.weights[i]!.values[j]!, weightTolerance, w.name)))
}

describe.skipIf(!probe.ok)("fused webgpu MLP training", () => {
  beforeAll(async () => {
    await initBackend("webgpu")
  })
  afterAll(async () => {
    await initBackend("cpu")
  })

  it("CE only: the same losses and weights as the generic tfjs loop, in few dispatches per step", async () => {
    const o = options(objective({ divergence: "none" }))
    const pass = passPrototype()
    const original = pass.dispatchWorkgroups
    let count = 0
    const perStep: Array<number> = []
    pass.dispatchWorkgroups = function (this: unknown, ...a: Array<number>) {
      count++
      return original.apply(this, a)
    }
    let fused: TrainResult
    try {
      let last = 0
      fused = await run({
        ...o,
        onBatchEvery: 1,
        // Between two batches of one epoch: a step's dispatches and nothing else (validation is not in it).
        onBatch: (r) => {
          if (r.batch > 1) perStep.push(count - last)
          last = count
        }
      })
    } finally {
      pass.dispatchWorkgroups = original
    }
    const plain = await generic(o)
    assertClose(fused, plain, 1e-4)
    // gather, 3 forward, loss, 3 x (weight grad, bias grad), 2 input grads, Adam.
    assert.isAbove(perStep.length, 0)
    perStep.forEach((c) => assert.strictEqual(c, 14))
  })

  it("forward KL with a teacher and unlabelled rows: the same losses and weights as the generic loop", async () => {
    const o = options(objective({ divergence: "forward_kl", temperature: 2, alpha: 0.7 }))
    assertClose(await run(o), await generic(o), 1e-4)
  })

  it("a batch without labelled rows contributes the distillation term only, as objectiveLoss", async () => {
    const data = dataset(40, 5, 1)
    const o = options(objective({ divergence: "forward_kl", temperature: 3, alpha: 0.4 }), {
      train: { x: data.x, y: data.y },
      teacher: { logits: data.logits },
      epochs: 2
    })
    assertClose(await run(o), await generic(o), 1e-4)
  })

  it("no hidden layer (softmax regression) and one batch larger than the data", async () => {
    const o = options(objective({ divergence: "forward_kl", temperature: 2 }), {
      spec: decodeModelSpec({ type: "mlp", hidden: [] }),
      batchSize: 500,
      epochs: 2
    })
    assertClose(await run(o), await generic(o), 1e-4)
  })

  it("dropout: deterministic for a seed, and it learns", async () => {
    const o = options(objective({ divergence: "none" }), {
      spec: decodeModelSpec({ type: "mlp", hidden: [16, 12], dropout: 0.3 }),
      optimizer: { type: "adam", learningRate: 0.03 }
    })
    const [a, b] = [await run(o), await run(o)]
    assert.deepStrictEqual(a.weights, b.weights)
    assert.deepStrictEqual(
      a.history.map((h) => h.trainLoss),
      b.history.map((h) => h.trainLoss)
    )
    assert.isAbove(a.history.at(-1)!.valAccuracy!, 0.9)
    const other = await run({ ...o, seed: 8 })
    assert.notDeepEqual(other.weights[0]!.values, a.weights[0]!.values)
  })

  it("checkpoint best with early stopping returns the best epoch's weights", async () => {
    // Validation labels unrelated to x, and a large step size: the validation loss soon gets worse.
    const rng = makeRng(9)
    const val = dataset(60, 4)
    const o = options(objective({ divergence: "none" }), {
      validation: { x: val.x, y: Int32Array.from(val.y, () => rng.int(classes)) },
      optimizer: { type: "adam", learningRate: 0.05 },
      epochs: 8,
      checkpoint: "best",
      earlyStopping: { patience: 2, metric: "val_loss" }
    })
    const r = await run(o)
    const losses = r.history.map((h) => h.valLoss!)
    const best = losses.indexOf(Math.min(...losses)) + 1
    assert.strictEqual(r.info.bestEpoch, best)
    assert.strictEqual(r.info.epoch, best)
    assert.isTrue(r.info.stoppedEarly)
    assert.strictEqual(r.info.epochsRun, best + 2)
    assert.isBelow(r.info.epochsRun, 8)
    // The returned weights score the best epoch's validation loss.
    const before = tf.memory().numTensors
    const net = networkFromWeights(o.spec, o.featureShape, o.numClasses, r.weights)
    const x = tf.tensor2d(o.validation!.x, [60, d])
    const y = tf.tensor1d(o.validation!.y, "int32")
    const score = await evaluate(net, x, y, 512, undefined)
    tf.dispose([x, y])
    net.dispose()
    assert.strictEqual(tf.memory().numTensors, before)
    assert.approximately(score!.loss, losses[best - 1]!, 1e-4)
  })

  it("starts from initial weights when given, and aborts between batches leaving nothing behind", async () => {
    const o = options(objective({ divergence: "none" }), { epochs: 1 })
    const first = await run(o)
    const resumed = { ...o, initial: { weights: first.weights } }
    assertClose(await run(resumed), await generic(resumed), 1e-4)

    const controller = new AbortController()
    const before = tf.memory().numTensors
    let error: unknown
    try {
      await train({ ...o, signal: controller.signal, onBatchEvery: 1, onBatch: (r) => r.batch === 2 && controller.abort(new Error("stop")) })
    } catch (e) {
      error = e
    }
    assert.strictEqual((error as Error).message, "stop")
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("declines what it does not cover, so the generic loop runs", async () => {
    const base = options(objective({ divergence: "forward_kl" }))
    const k = 2
    const n = base.train.y.length
    const declined: Array<TrainOptions> = [
      { ...base, teacher: { topk: { k, indices: new Int32Array(n * k), values: new Float32Array(n * k), tailLogSumExp: new Float32Array(n) } } },
      { ...base, extra: { variables: [], loss: () => tf.scalar(0) } },
      { ...base, optimizer: { type: "sgd", learningRate: 0.1 } },
      { ...base, optimizer: { type: "adam", learningRate: 0.1, weightDecay: 0.01 } },
      { ...base, spec: decodeModelSpec({ type: "cnn", channels: [2], imageShape: [2, 6, 1] }) },
      { ...base, spec: decodeModelSpec({ type: "mlp", hidden: [8], activation: "tanh" }) },
      { ...base, objective: objective({ divergence: "reverse_kl" }) }
    ]
    const { objective: _, ...noObjective } = base
    for (const o of [...declined, noObjective]) assert.isUndefined(await trainFusedMlp(o))
    await initBackend("cpu")
    try {
      assert.isUndefined(await trainFusedMlp(base))
    } finally {
      await initBackend("webgpu")
    }
  })

  it("records a step in a handful of dispatches (bench/gpu.ts times it)", async () => {
    const before = tf.memory().numTensors
    const data = dataset(64, 6)
    const fused = await buildFusedMlp({
      sizes: [d, 16, 12, classes],
      batchSize: 64,
      dropout: 0,
      loss: { kl: 0, ce: 1, temperature: 1 },
      adam: { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
      train: { x: data.x, y: data.y },
      initial: [d * 16, 16, 16 * 12, 12, 12 * classes, classes].map((size) => new Float32Array(size).fill(0.1))
    })
    try {
      fused.beginEpoch(Int32Array.from({ length: 64 }, (_, i) => i))
      for (let t = 1; t <= 3; t++) fused.step(0, 64, t, t)
      assert.isTrue(Number.isFinite(await fused.readLossSum()))
    } finally {
      await fused.idle()
      fused.destroy()
    }
    assert.strictEqual(tf.memory().numTensors, before)
    assert.strictEqual(fused.dispatchesPerStep, 14)
  })
})
