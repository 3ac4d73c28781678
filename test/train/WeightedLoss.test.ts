/**
 * Per-target loss weights (multi-task corpora, lm_tasks): all-ones weights train bit for bit the model
 * of no weights; weight 0 on one task's positions is the loss masked there, rescaled by the count of
 * counted targets (the weighted loss keeps every counted target in its denominator), in loss values,
 * gradients, and, with full batches and Adam (which is blind to a constant gradient scale), in the
 * trained weights; the tensor count stays flat; weights with a teacher are refused.
 * Tiny transformers on the wasm backend.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { nextTokenLoss, weightedNextTokenLoss } from "../../src/losses/nextToken.js"
import { buildTransformer } from "../../src/models/Transformer.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import type { PackedTokens } from "../../src/tokenizer/Pack.js"
import type { LmTrainOptions } from "../../src/train/LanguageModel.js"
import { trainLanguageModel } from "../../src/train/LanguageModel.js"
import { rulePack, weightsHash } from "../fixtures/transformer.js"

beforeAll(async () => {
  await initBackend("wasm")
})

const spec = decodeTransformerSpec({ type: "transformer", vocabSize: 20, layers: 1, width: 16, heads: 2, context: 8 })

/**
 * Per-target weights of a `rulePack` (every 5th position a prompt token): `a` on task A's rows (even),
 * `b` on task B's (odd), 0 where the target is not counted.
 */
const weighted = (p: PackedTokens, a: number, b: number): PackedTokens => ({
  ...p,
  weights: Float32Array.from(p.targets, (y, i) => (y < 0 ? 0 : Math.floor(i / p.length) % 2 === 0 ? a : b))
})

/** Task B's targets masked (-1): what the loss sees when only task A counts. */
const maskedB = (p: PackedTokens): PackedTokens => ({
  ...p,
  targets: Int32Array.from(p.targets, (y, i) => (Math.floor(i / p.length) % 2 === 1 ? -1 : y))
})

const counted = (p: PackedTokens): number => p.targets.reduce((n, y) => n + (y >= 0 ? 1 : 0), 0)

const train = rulePack(16, 1, 5)
const base: LmTrainOptions = {
  spec,
  train,
  validation: rulePack(8, 2, 5),
  optimizer: { type: "adam", learningRate: 0.01, weightDecay: 0.1 },
  batchSize: 4,
  steps: 6,
  evalEvery: 3,
  warmupSteps: 2,
  clipNorm: 1,
  seed: 3,
  checkpoint: "last"
}

const hash = (r: Awaited<ReturnType<typeof trainLanguageModel>>): string => weightsHash(r.weights)

describe("weighted next-token cross-entropy", () => {
  it("with all-ones weights trains bit for bit the weights of no weights", async () => {
    const plain = await trainLanguageModel(base)
    const ones = await trainLanguageModel({ ...base, train: weighted(train, 1, 1), accumulate: 1 })
    assert.strictEqual(hash(ones), hash(plain))
    assert.deepStrictEqual(
      ones.history.map((h) => [h.trainLoss, h.valLoss]),
      plain.history.map((h) => [h.trainLoss, h.valLoss])
    )
    // And weights that differ from 1 do change them.
    const half = await trainLanguageModel({ ...base, train: weighted(train, 1, 0.5) })
    assert.notStrictEqual(hash(half), hash(plain))
  })

  it("weight 0 on one task is its loss masked, rescaled by the counted targets: values and gradients", () => {
    const before = tf.memory().numTensors
    const model = buildTransformer(spec, 4)
    const p = rulePack(6, 9, 5)
    const w = weighted(p, 1, 0)
    const m = maskedB(p)
    const scale = counted(m) / counted(p) // weighted = masked * this
    const [lossW, lossM, gradW, gradM] = tf.tidy(() => {
      const x = tf.tensor2d(p.inputs, [6, 8], "int32")
      const y = tf.tensor2d(p.targets, [6, 8], "int32")
      const ym = tf.tensor2d(m.targets, [6, 8], "int32")
      const wt = tf.tensor2d(w.weights!, [6, 8])
      const vars = model.variables.filter((v) => v.trainable)
      const gw = tf.variableGrads(() => weightedNextTokenLoss(model.forward(x, { training: false }).logits, y, wt), vars)
      const gm = tf.variableGrads(() => nextTokenLoss(model.forward(x, { training: false }).logits, ym), vars)
      const flat = (g: tf.NamedTensorMap) => tf.concat(Object.values(g).map((t) => tf.reshape(t, [-1])))
      return [gw.value, gm.value, flat(gw.grads), flat(gm.grads)]
    })
    const [lw, lm] = [lossW!.dataSync()[0]!, lossM!.dataSync()[0]!]
    assert.closeTo(lw, lm * scale, 1e-6)
    const [gw, gm] = [gradW!.dataSync(), gradM!.dataSync()]
    let worst = 0
    for (let i = 0; i < gw.length; i++) worst = Math.max(worst, Math.abs(gw[i]! - gm[i]! * scale))
    assert.isBelow(worst, 1e-6)
    // Weight 0.5 everywhere is half the loss.
    const half = tf.tidy(() =>
      weightedNextTokenLoss(
        model.forward(tf.tensor2d(p.inputs, [6, 8], "int32"), { training: false }).logits,
        tf.tensor2d(p.targets, [6, 8], "int32"),
        tf.tensor2d(weighted(p, 0.5, 0.5).weights!, [6, 8])
      ).dataSync()[0]!
    )
    const full = tf.tidy(() =>
      nextTokenLoss(model.forward(tf.tensor2d(p.inputs, [6, 8], "int32"), { training: false }).logits, tf.tensor2d(p.targets, [6, 8], "int32")).dataSync()[0]!
    )
    assert.closeTo(half, full / 2, 1e-6)
    tf.dispose([lossW!, lossM!, gradW!, gradM!])
    model.dispose()
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("weight 0 on one task trains the weights of its loss masked (full batches, Adam without clipping)", async () => {
    // One full batch per step: the weighted loss is the masked loss times a constant, to which Adam is blind (epsilon aside).
    const { clipNorm: _clip, ...unclipped } = base
    const full: LmTrainOptions = { ...unclipped, batchSize: 16, optimizer: { type: "adam", learningRate: 0.01, weightDecay: 0.1, epsilon: 1e-12 } }
    const w = await trainLanguageModel({ ...full, train: weighted(train, 1, 0) })
    const m = await trainLanguageModel({ ...full, train: maskedB(train) })
    const scale = counted(maskedB(train)) / counted(train)
    const [x, y] = [w.weights.flatMap((v) => Array.from(v.values)), m.weights.flatMap((v) => Array.from(v.values))]
    let worst = 0
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!))
    assert.isBelow(worst, 1e-5)
    w.history.forEach((h, i) => {
      assert.closeTo(h.trainLoss, m.history[i]!.trainLoss * scale, 1e-5)
      assert.closeTo(h.valLoss!, m.history[i]!.valLoss!, 1e-5) // validation is unweighted CE
    })
  })

  it("leaves the tensor count flat across rounds and after the run", async () => {
    const before = tf.memory().numTensors
    const perRound: Array<number> = []
    await trainLanguageModel({ ...base, train: weighted(train, 1, 0.5), accumulate: 2, onRound: () => perRound.push(tf.memory().numTensors) })
    assert.strictEqual(perRound.length, 2)
    assert.strictEqual(perRound[0], perRound[1])
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("refuses weights with a teacher, and weights of another length", async () => {
    const teacher = buildTransformer(spec, 7)
    try {
      const error = await trainLanguageModel({ ...base, train: weighted(train, 1, 0.5), teacher }).then(
        () => "",
        (e: Error) => e.message
      )
      assert.match(error, /per-target loss weights apply to next-token cross-entropy training only/)
    } finally {
      teacher.dispose()
    }
    const short = await trainLanguageModel({ ...base, train: { ...train, weights: new Float32Array(3) } }).then(
      () => "",
      (e: Error) => e.message
    )
    assert.match(short, /loss weights for 3 positions, but the training sequences have 128/)
  })
})
