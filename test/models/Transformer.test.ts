import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import type { TrainableModel } from "../../src/train/ModelFamily.js"
import { makeRng } from "../../src/domain/Random.js"
import type { Transformer } from "../../src/models/Transformer.js"
import {
  buildTransformer,
  forward,
  transformerFromWeights,
  transformerParameterCount,
  transformerWeights,
  transformerWeightSpecs
} from "../../src/models/Transformer.js"
import { defaultMlpWidth, TransformerSpec } from "../../src/models/TransformerSpec.js"
import { wideWeights } from "../fixtures/transformer.js"

const decode = Schema.decodeUnknownSync(TransformerSpec)
const tiny = decode({ type: "transformer", vocabSize: 13, layers: 2, width: 16, heads: 4, kvHeads: 2, mlpWidth: 24, context: 12 })

const randomTokens = (B: number, T: number, V: number, seed: number): Int32Array => {
  const rng = makeRng(seed)
  return Int32Array.from({ length: B * T }, () => rng.int(V))
}

const logitsOf = (model: Transformer, tokens: Int32Array, B: number, T: number): Float32Array =>
  tf.tidy(() => forward(model, tf.tensor2d(tokens, [B, T], "int32"), { training: false }).dataSync() as Float32Array)

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.strictEqual(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

/** Mean next-token cross-entropy of logits (B, T, V) against targets (B, T). */
const crossEntropy = (logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar => {
  const [B, T, V] = logits.shape
  const logp = tf.logSoftmax(tf.reshape(logits, [B * T, V])) // (B·T, V)
  return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(tf.reshape(targets, [B * T]) as tf.Tensor1D, V)), -1))) as tf.Scalar
}

beforeAll(async () => {
  await initBackend("cpu")
})

describe("TransformerSpec", () => {
  it("fills defaults and rejects widths the heads do not divide", () => {
    const s = decode({ type: "transformer", vocabSize: 256, layers: 1, width: 64, heads: 4, context: 32 })
    assert.strictEqual(s.tiedHead, true)
    assert.strictEqual(s.ropeTheta, 10000)
    assert.strictEqual(s.dropout, 0)
    assert.strictEqual(defaultMlpWidth(64), 176)
    assert.strictEqual(transformerWeightSpecs(s).find((w) => w.name === "block1/attention/key")!.shape[1], 64)
    assert.throws(() => decode({ ...s, width: 18 }), /width 18 must be a multiple of heads 4/)
    assert.throws(() => decode({ ...s, width: 12 }), /head size width \/ heads = 3 must be even/)
    assert.throws(() => decode({ ...s, kvHeads: 3 }), /heads 4 must be a multiple of kvHeads 3/)
  })
})

describe("Transformer", () => {
  it("forward gives (B, T, V) logits; tied and untied heads have the expected parameter counts", () => {
    const model = buildTransformer(tiny, 1)
    const before = tf.memory().numTensors
    const logits = tf.tidy(() => forward(model, tf.tensor2d(randomTokens(3, 7, 13, 2), [3, 7], "int32"), { training: false }))
    assert.deepStrictEqual(logits.shape, [3, 7, 13])
    logits.dispose()
    assert.strictEqual(tf.memory().numTensors, before)
    const [V, D, F, kv] = [13, 16, 24, 2 * 4]
    const perBlock = 2 * D + D * D + 2 * D * kv + D * D + 3 * D * F
    const tied = V * D + 2 * perBlock + D
    assert.strictEqual(transformerParameterCount(model), tied)
    assert.strictEqual(transformerParameterCount(tiny), tied)
    assert.strictEqual(transformerParameterCount({ ...tiny, tiedHead: false }), tied + D * V)
    assert.deepStrictEqual(model.weightNames.slice(0, 3), ["embedding", "block1/attention_norm", "block1/attention/query"])
    assert.strictEqual(model.weightNames[model.weightNames.length - 1], "final_norm")
    // The training layer's model interface, as the transformer family will hand it to the loop.
    const trainable: TrainableModel<tf.Tensor2D, tf.Tensor3D> = model
    assert.strictEqual(trainable.variables.length, trainable.weightNames.length)
    model.dispose()
    assert.strictEqual(tf.memory().numTensors, before - model.variables.length - 2)
  })

  it("initialisation is deterministic per seed: normal(0, 0.02), residual projections scaled down, norms at 1", async () => {
    const [a, b, c] = [buildTransformer(tiny, 7), buildTransformer(tiny, 7), buildTransformer(tiny, 8)]
    const [wa, wb, wc] = await Promise.all([a, b, c].map(transformerWeights))
    assert.isTrue(wa!.every((w, i) => maxAbsDiff(w.values, wb![i]!.values) === 0))
    assert.isTrue(maxAbsDiff(wa![0]!.values, wc![0]!.values) > 0)
    // Root mean square over every tensor of one kind, so the estimate rests on thousands of draws.
    const rms = (pick: (name: string) => boolean): number => {
      const v = wa!.filter((w) => pick(w.name)).flatMap((w) => Array.from(w.values))
      return Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length)
    }
    const residual = (name: string) => /attention\/output|mlp\/down/.test(name)
    assert.approximately(rms((n) => !residual(n) && !/norm/.test(n)), 0.02, 0.001)
    assert.approximately(rms(residual), 0.02 / Math.sqrt(2 * 2), 0.001)
    assert.isTrue(wa!.find((w) => w.name === "final_norm")!.values.every((x) => x === 1))
    ;[a, b, c].forEach((m) => m!.dispose())
  })

  it("is causal: changing a future token never changes an earlier position's logits", () => {
    const model = transformerFromWeights(tiny, wideWeights(tiny, 3))
    const [B, T, V] = [2, 12, 13]
    const tokens = randomTokens(B, T, V, 4)
    const base = logitsOf(model, tokens, B, T)
    for (const p of [0, 5, 11]) {
      const changed = tokens.slice()
      for (let b = 0; b < B; b++) changed[b * T + p] = (tokens[b * T + p]! + 1) % V
      const other = logitsOf(model, changed, B, T)
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const at = (x: Float32Array) => x.subarray((b * T + t) * V, (b * T + t + 1) * V)
          const d = maxAbsDiff(at(base), at(other))
          if (t < p) assert.strictEqual(d, 0, `row ${b}, position ${t} changed when ${p} did`)
          else if (t === p) assert.isAbove(d, 1e-3)
        }
      }
    }
    model.dispose()
  })

  it("grouped KV heads match multi-head attention with each KV head repeated for its query heads", () => {
    const weights = wideWeights(tiny, 5)
    const gqa = transformerFromWeights(tiny, weights)
    const mha = { ...tiny, kvHeads: 4 }
    const hd = 4
    // Query head h reads KV head floor(h / 2): repeat each KV head's hd columns twice.
    const repeated = weights.map((w) => {
      if (!/attention\/(key|value)$/.test(w.name)) return w
      const [D, cols] = w.shape as [number, number]
      const values = new Float32Array(D * 2 * cols)
      for (let r = 0; r < D; r++) {
        for (let h = 0; h < 4; h++) {
          const g = Math.floor(h / 2)
          values.set(w.values.subarray(r * cols + g * hd, r * cols + (g + 1) * hd), r * 2 * cols + h * hd)
        }
      }
      return { name: w.name, shape: [D, 2 * cols], values }
    })
    const reference = transformerFromWeights(mha, repeated)
    const tokens = randomTokens(2, 9, 13, 6)
    assert.isAtMost(maxAbsDiff(logitsOf(gqa, tokens, 2, 9), logitsOf(reference, tokens, 2, 9)), 1e-5)
    gqa.dispose()
    reference.dispose()
  })

  it("cross-entropy gradients agree with central finite differences", () => {
    const spec = { ...tiny, tiedHead: false }
    const model = transformerFromWeights(spec, wideWeights(spec, 9))
    const [B, T] = [2, 6]
    const tokens = tf.tensor2d(randomTokens(B, T + 1, 13, 10), [B, T + 1], "int32")
    const inputs = tf.slice(tokens, [0, 0], [B, T]) as tf.Tensor2D
    const targets = tf.slice(tokens, [0, 1], [B, T]) as tf.Tensor2D
    const loss = () => crossEntropy(forward(model, inputs, { training: false }), targets)
    const { grads } = tf.variableGrads(loss, [...model.variables])
    const lossAt = (): number => tf.tidy(() => loss().dataSync()[0]!)
    const rng = makeRng(11)
    const h = 1e-2
    let checked = 0
    for (const v of model.variables) {
      const g = grads[v.name]!.dataSync() as Float32Array
      const values = v.dataSync().slice() as Float32Array
      // The steepest element and a random one of each tensor.
      for (const i of [Array.from(g.keys()).reduce((a, b) => (Math.abs(g[b]!) > Math.abs(g[a]!) ? b : a), 0), rng.int(g.length)]) {
        const at = (x: number): number => {
          const w = values.slice()
          w[i] = x
          tf.tidy(() => v.assign(tf.tensor(w, v.shape)))
          return lossAt()
        }
        const numeric = (at(values[i]! + h) - at(values[i]! - h)) / (2 * h)
        tf.tidy(() => v.assign(tf.tensor(values, v.shape)))
        const analytic = g[i]!
        assert.isAtMost(Math.abs(numeric - analytic), 1e-2 * Math.abs(analytic) + 2e-4, `${model.weightNames[model.variables.indexOf(v)]}[${i}]: numeric ${numeric}, analytic ${analytic}`)
        checked++
      }
    }
    assert.strictEqual(checked, 2 * model.variables.length)
    tf.dispose([tokens, inputs, targets, ...Object.values(grads)])
    model.dispose()
  })

  it("dropout only when training, deterministic for a seed; tensors stay flat across passes", () => {
    const model = buildTransformer({ ...tiny, dropout: 0.3 }, 1)
    const tokens = randomTokens(2, 8, 13, 12)
    const run = (training: boolean, seed?: number) =>
      tf.tidy(() => forward(model, tf.tensor2d(tokens, [2, 8], "int32"), { training, ...(seed === undefined ? {} : { seed }) }).dataSync() as Float32Array)
    const before = tf.memory().numTensors
    assert.strictEqual(maxAbsDiff(run(false), run(false)), 0)
    assert.strictEqual(maxAbsDiff(run(true, 1), run(true, 1)), 0)
    assert.isAbove(maxAbsDiff(run(true, 1), run(true, 2)), 0)
    assert.isAbove(maxAbsDiff(run(true, 1), run(false)), 0)
    tf.tidy(() => {
      tf.variableGrads(() => tf.sum(forward(model, tf.tensor2d(tokens, [2, 8], "int32"), { training: true })) as tf.Scalar)
    })
    assert.strictEqual(tf.memory().numTensors, before)
    model.dispose()
  })

  it("weights out and back in reproduce the logits; weights that do not fit are rejected by name", async () => {
    const model = buildTransformer({ ...tiny, tiedHead: false }, 2)
    const weights = await transformerWeights(model)
    const tokens = randomTokens(1, 10, 13, 13)
    const loaded = transformerFromWeights({ ...tiny, tiedHead: false }, weights)
    assert.strictEqual(maxAbsDiff(logitsOf(model, tokens, 1, 10), logitsOf(loaded, tokens, 1, 10)), 0)
    assert.throws(() => transformerFromWeights({ ...tiny, tiedHead: false }, weights.slice(1)), /missing embedding \[13, 16\]/)
    assert.throws(() => transformerFromWeights({ ...tiny, kvHeads: 4, tiedHead: false }, weights), /block1\/attention\/key has shape \[16, 8\].*expected \[16, 16\]/)
    assert.throws(() => forward(model, tf.zeros([1, 13], "int32") as tf.Tensor2D, { training: false }), /13 tokens exceed the transformer's context of 12/)
    model.dispose()
    loaded.dispose()
  })

  it("logits agree between cpu and wasm", async () => {
    const weights = wideWeights(tiny, 14)
    const tokens = randomTokens(2, 12, 13, 15)
    const cpu = transformerFromWeights(tiny, weights)
    const onCpu = logitsOf(cpu, tokens, 2, 12)
    cpu.dispose()
    await initBackend("wasm")
    try {
      const wasm = transformerFromWeights(tiny, weights)
      assert.isAtMost(maxAbsDiff(logitsOf(wasm, tokens, 2, 12), onCpu), 1e-4)
      wasm.dispose()
    } finally {
      await initBackend("cpu")
    }
  })

  it("a few Adam steps on a repeated token pattern lower the loss", () => {
    const model = buildTransformer(tiny, 3)
    const pattern = [3, 1, 4, 1, 5, 9]
    const [B, T] = [4, 11]
    const rows = Int32Array.from({ length: B * (T + 1) }, (_, i) => pattern[(Math.floor(i / (T + 1)) + (i % (T + 1))) % pattern.length]!)
    const tokens = tf.tensor2d(rows, [B, T + 1], "int32")
    const inputs = tf.slice(tokens, [0, 0], [B, T]) as tf.Tensor2D
    const targets = tf.slice(tokens, [0, 1], [B, T]) as tf.Tensor2D
    const optimizer = tf.train.adam(1e-2)
    const before = tf.memory().numTensors
    const losses: Array<number> = []
    for (let step = 0; step < 40; step++) {
      const loss = optimizer.minimize(() => crossEntropy(forward(model, inputs, { training: true }), targets), true, [...model.variables])!
      losses.push(loss.dataSync()[0]!)
      loss.dispose()
      // Adam's moments are made on the first step.
      if (step === 0) assert.isAbove(tf.memory().numTensors, before)
    }
    assert.approximately(losses[0]!, Math.log(13), 0.2)
    assert.isBelow(losses[losses.length - 1]!, 0.5 * losses[0]!)
    optimizer.dispose()
    tf.dispose([tokens, inputs, targets])
    model.dispose()
  })
})
