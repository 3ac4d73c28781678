import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import { generate, makeDecoder } from "../../src/generation/Decode.js"
import { argmax } from "../../src/generation/Sampler.js"
import type { Transformer } from "../../src/models/Transformer.js"
import { buildTransformer, forward } from "../../src/models/Transformer.js"
import { TransformerSpec } from "../../src/models/TransformerSpec.js"
import { wideTransformer as wide } from "../fixtures/transformer.js"

const decode = Schema.decodeUnknownSync(TransformerSpec)
const gqa = decode({ type: "transformer", vocabSize: 11, layers: 2, width: 16, heads: 4, kvHeads: 2, mlpWidth: 24, context: 12 })
const mha = decode({ type: "transformer", vocabSize: 11, layers: 3, width: 12, heads: 2, context: 12, tiedHead: false })

const rows = (B: number, T: number, V: number, seed: number): Array<Int32Array> => {
  const rng = makeRng(seed)
  return Array.from({ length: B }, () => Int32Array.from({ length: T }, () => rng.int(V)))
}

/** (B, T, V) logits of a full forward pass, row-major. */
const fullLogits = (model: Transformer, tokens: ReadonlyArray<Int32Array>): Float32Array => {
  const [B, T] = [tokens.length, tokens[0]!.length]
  const flat = new Int32Array(B * T)
  tokens.forEach((r, b) => flat.set(r, b * T))
  return tf.tidy(() => forward(model, tf.tensor2d(flat, [B, T], "int32"), { training: false }).dataSync() as Float32Array)
}

const take = (t: tf.Tensor2D): Float32Array => {
  const values = t.dataSync() as Float32Array
  t.dispose()
  return values
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.strictEqual(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

beforeAll(async () => {
  await initBackend("cpu")
})

describe("KV-cache decoding", () => {
  it("prefill then one step per token gives the full forward pass's logits at every position", () => {
    for (const [spec, seed] of [[gqa, 1], [mha, 2]] as const) {
      const model = wide(spec, seed)
      const [B, T, V] = [2, 12, 11]
      const tokens = rows(B, T, V, seed + 10)
      const full = fullLogits(model, tokens)
      const at = (b: number, t: number) => full.subarray((b * T + t) * V, (b * T + t + 1) * V)
      const expected = (t: number) => Float32Array.from([...at(0, t), ...at(1, t)]) // (B, V) at position t
      for (const split of [1, 5, 12]) {
        const decoder = makeDecoder(model)
        let worst = maxAbsDiff(take(decoder.prefill(tokens.map((r) => r.subarray(0, split)))), expected(split - 1))
        for (let t = split; t < T; t++) {
          worst = Math.max(worst, maxAbsDiff(take(decoder.step(tokens.map((r) => r[t]!))), expected(t)))
        }
        assert.strictEqual(decoder.position, T)
        assert.isAtMost(worst, 1e-4, `${spec.kvHeads ?? spec.heads} KV heads, prefill of ${split}`)
        decoder.dispose()
      }
      model.dispose()
    }
  })

  it("holds one key and one value tensor per layer: the tensor count is flat across steps and back to start after dispose", () => {
    const model = buildTransformer(gqa, 3)
    const before = tf.memory().numTensors
    const decoder = makeDecoder(model)
    take(decoder.prefill([[1, 2, 3]]))
    const held = tf.memory().numTensors
    assert.strictEqual(held, before + 2 * gqa.layers)
    for (let t = 0; t < 9; t++) {
      take(decoder.step([t % 11]))
      assert.strictEqual(tf.memory().numTensors, held)
    }
    assert.throws(() => decoder.step([0]), /13 tokens exceed the transformer's context of 12/)
    decoder.dispose()
    assert.strictEqual(tf.memory().numTensors, before)
    assert.throws(() => makeDecoder(model).prefill([[1, 11]]), /token 11 is outside the vocabulary of 11/)
    assert.strictEqual(tf.memory().numTensors, before)
    model.dispose()
  })
})

describe("generate", () => {
  it("greedy decoding follows the full forward pass's argmax; a seed fixes the samples", async () => {
    const model = wide(gqa, 4)
    const prompt = [3, 1, 4]
    const before = tf.memory().numTensors
    const greedy = await generate(model, prompt, { maxNewTokens: 5, sampler: { temperature: 0 }, seed: 1 })
    assert.strictEqual(greedy.finishReason, "length")
    const sequence = [...prompt]
    for (let i = 0; i < 5; i++) {
      const full = fullLogits(model, [Int32Array.from(sequence)])
      sequence.push(argmax(full.subarray((sequence.length - 1) * 11)))
    }
    assert.deepStrictEqual(Array.from(greedy.tokens), sequence.slice(prompt.length))
    const settings = { maxNewTokens: 20, sampler: { temperature: 1, topP: 0.9 }, seed: 5 }
    const [a, b, c] = await Promise.all([generate(model, prompt, settings), generate(model, prompt, settings), generate(model, prompt, { ...settings, seed: 6 })])
    assert.deepStrictEqual(Array.from(a!.tokens), Array.from(b!.tokens))
    assert.notDeepEqual(Array.from(a!.tokens), Array.from(c!.tokens))
    assert.strictEqual(a!.finishReason, "context")
    assert.strictEqual(a!.tokens.length, 12 - prompt.length)
    const stopped = await generate(model, prompt, { ...settings, stopTokens: [a!.tokens[2]!] })
    assert.strictEqual(stopped.finishReason, "stop")
    assert.isAtMost(stopped.tokens.length, 3)
    assert.strictEqual(tf.memory().numTensors, before)
    model.dispose()
  })
})
