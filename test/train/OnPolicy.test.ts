/**
 * The on-policy batch source: the seeded draw per micro-batch, each row's prompt (leading prompt tokens
 * or the first promptTokens), greedy continuations equal to the full forward pass's argmax chain (the
 * batched KV-cache decode is exact), the pack layout (targets at generated positions only, padding past
 * maxNewTokens), determinism per seed and no tensor left behind. A tiny transformer on wasm.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import { argmax } from "../../src/generation/Sampler.js"
import type { Transformer } from "../../src/models/Transformer.js"
import { buildTransformer } from "../../src/models/Transformer.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import type { OnPolicySettings } from "../../src/train/OnPolicy.js"
import { isOnPolicy, promptLength, sampleOnPolicyBatch } from "../../src/train/OnPolicy.js"

beforeAll(async () => {
  await initBackend("wasm")
})

const spec = decodeTransformerSpec({ type: "transformer", vocabSize: 20, layers: 2, width: 16, heads: 2, context: 8 })
const T = 6

/** Three rows of T tokens: plain text, a prompt of 3 tokens (targets -1 at 0, 1), plain text again. */
const pack = () => {
  const rng = makeRng(3)
  const inputs = Int32Array.from({ length: 3 * T }, () => rng.int(20))
  const targets = Int32Array.from({ length: 3 * T }, (_, i) => (i % T === T - 1 ? rng.int(20) : inputs[i + 1]!))
  targets[T] = -1
  targets[T + 1] = -1
  return { length: T, inputs, targets }
}

/** The greedy continuation of `prompt` up to `end` tokens, one full forward pass per token. */
const greedy = (model: Transformer, prompt: ArrayLike<number>, end: number): Array<number> => {
  const s = Array.from(prompt)
  while (s.length < end) {
    const row = tf.tidy(() => {
      const logits = model.forward(tf.tensor2d([s], [1, s.length], "int32"), { training: false }).logits // (1, S, V)
      return Array.from(tf.slice(logits, [0, s.length - 1, 0], [1, 1, spec.vocabSize]).dataSync())
    })
    s.push(argmax(row))
  }
  return s
}

const settings = (o: Partial<OnPolicySettings> = {}): OnPolicySettings => ({ lambda: 1, promptTokens: 2, sampler: { temperature: 0 }, ...o })

describe("isOnPolicy", () => {
  it("never at lambda 0, always at 1, about lambda otherwise, the same per seed", () => {
    const draws = (lambda: number, seed = 1) => Array.from({ length: 400 }, (_, b) => isOnPolicy(seed, lambda, 1 + (b % 4), b))
    assert.isTrue(draws(0).every((d) => !d))
    assert.isTrue(draws(1).every((d) => d))
    const half = draws(0.5).filter((d) => d).length
    assert.isTrue(half > 160 && half < 240, String(half))
    assert.deepStrictEqual(draws(0.5), draws(0.5))
    assert.notDeepEqual(draws(0.5), draws(0.5, 2))
  })
})

describe("promptLength", () => {
  it("is the leading prompt tokens plus the token before the first counted target, else promptTokens, at most T", () => {
    assert.strictEqual(promptLength([5, 6, 7, 8], 2), 2)
    assert.strictEqual(promptLength([-1, -1, 7, 8], 2), 3)
    assert.strictEqual(promptLength([-1, 6, -1, 8], 3), 2)
    assert.strictEqual(promptLength([-1, -1, -1, -1], 2), 4)
    assert.strictEqual(promptLength([5, 6, 7, 8], 9), 4)
  })
})

describe("sampleOnPolicyBatch", () => {
  it("continues each prompt greedily as the full forward pass would, with targets at generated positions only", () => {
    const model = buildTransformer(spec, 1)
    const p = pack()
    const before = tf.memory().numTensors
    const batch = sampleOnPolicyBatch(model, p, settings(), makeRng(1))
    assert.strictEqual(tf.memory().numTensors, before)
    assert.strictEqual(batch.rows, 3)
    assert.strictEqual(batch.length, T)
    const prompts = [2, 3, 2]
    assert.strictEqual(batch.generated, prompts.reduce((sum, q) => sum + T + 1 - q, 0))
    prompts.forEach((q, r) => {
      const want = greedy(model, p.inputs.subarray(r * T, r * T + q), T + 1) // (T + 1) tokens
      const inputs = Array.from(batch.inputs.subarray(r * T, (r + 1) * T))
      const targets = Array.from(batch.targets.subarray(r * T, (r + 1) * T))
      assert.deepStrictEqual(inputs, want.slice(0, T), `row ${r}`)
      assert.deepStrictEqual(targets, want.slice(1).map((y, t) => (t + 1 >= q ? y : -1)), `row ${r}`)
    })
    model.dispose()
  })

  it("stops maxNewTokens past each prompt and pads the shorter rows with token 0 and target -1", () => {
    const model = buildTransformer(spec, 1)
    const p = pack()
    const batch = sampleOnPolicyBatch(model, p, settings({ maxNewTokens: 2 }), makeRng(1))
    // Rows end at 4, 5 and 4 tokens: inputs of 4 positions, the first and last rows padded at the end.
    assert.strictEqual(batch.length, 4)
    assert.strictEqual(batch.generated, 6)
    const row = (a: Int32Array, r: number) => Array.from(a.subarray(r * 4, (r + 1) * 4))
    const first = greedy(model, p.inputs.subarray(0, 2), 4)
    assert.deepStrictEqual(row(batch.inputs, 0), [...first.slice(0, 3), 0])
    assert.deepStrictEqual(row(batch.targets, 0), [-1, first[2]!, first[3]!, -1])
    const second = greedy(model, p.inputs.subarray(T, T + 3), 5)
    assert.deepStrictEqual(row(batch.inputs, 1), second.slice(0, 4))
    assert.deepStrictEqual(row(batch.targets, 1), [-1, -1, second[3]!, second[4]!])
    model.dispose()
  })

  it("samples the same tokens for the same seed, other tokens for another, and leaves no tensor behind", () => {
    const model = buildTransformer(spec, 1)
    const p = pack()
    const sampled = settings({ sampler: { temperature: 1.5, topK: 10 } })
    const before = tf.memory().numTensors
    const a = sampleOnPolicyBatch(model, p, sampled, makeRng(7))
    const b = sampleOnPolicyBatch(model, p, sampled, makeRng(7))
    const c = sampleOnPolicyBatch(model, p, sampled, makeRng(8))
    assert.strictEqual(tf.memory().numTensors, before)
    assert.deepStrictEqual(a, b)
    assert.notDeepEqual(Array.from(a.inputs), Array.from(c.inputs))
    model.dispose()
  })
})
