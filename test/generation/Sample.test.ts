/**
 * Batched sampling: a row's tokens depend on its prompt and seed only (not on its batch or the order
 * of the rows), seeds differ -> samples differ, stop tokens and `stopped` end a row, every token's
 * log-prob is the untempered log-softmax, and no tensor is left behind.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import { generate } from "../../src/generation/Decode.js"
import { sampleRows } from "../../src/generation/Sample.js"
import type { Transformer } from "../../src/models/Transformer.js"
import { forward } from "../../src/models/Transformer.js"
import { TransformerSpec } from "../../src/models/TransformerSpec.js"
import { wideTransformer } from "../fixtures/transformer.js"

const spec = Schema.decodeUnknownSync(TransformerSpec)({ type: "transformer", vocabSize: 13, layers: 2, width: 16, heads: 2, context: 16 })

const prompts = [Int32Array.of(1, 2, 3), Int32Array.of(4, 5, 6), Int32Array.of(7), Int32Array.of(1, 2, 3), Int32Array.of(8, 9)]
const rows = prompts.map((prompt, i) => ({ prompt, seed: 100 + i }))
const sampler = { temperature: 1 }

let model: Transformer
beforeAll(async () => {
  await initBackend("cpu")
  model = wideTransformer(spec, 3)
})

describe("sampleRows", () => {
  it("gives each row the same tokens whatever its batch, batch size or row order, and leaks no tensor", async () => {
    const before = tf.memory().numTensors
    const together = await sampleRows(model, rows, { maxNewTokens: 8, sampler, batchSize: 8 })
    const alone = await sampleRows(model, rows, { maxNewTokens: 8, sampler, batchSize: 1 })
    const reversed = (await sampleRows(model, [...rows].reverse(), { maxNewTokens: 8, sampler, batchSize: 2 })).reverse()
    assert.strictEqual(tf.memory().numTensors, before)
    for (const other of [alone, reversed]) {
      assert.deepStrictEqual(other.map((s) => Array.from(s.tokens)), together.map((s) => Array.from(s.tokens)))
      other.forEach((s, i) => assert.isBelow(Math.max(...s.logProbs.map((x, j) => Math.abs(x - together[i]!.logProbs[j]!))), 1e-4))
    }
    // One prompt (rows 0 and 3), two seeds: two different samples.
    assert.notDeepEqual(Array.from(together[0]!.tokens), Array.from(together[3]!.tokens))
    // The decoder's own one-prompt loop draws the same tokens from the same seed.
    const single = await generate(model, prompts[2]!, { maxNewTokens: 8, sampler, seed: 102 })
    assert.deepStrictEqual(Array.from(single.tokens), Array.from(together[2]!.tokens))
  })

  it("records log p(token) under the model's softmax at temperature 1, whatever the sampling temperature", async () => {
    const [s] = await sampleRows(model, [rows[0]!], { maxNewTokens: 5, sampler: { temperature: 0.5, topK: 3 }, batchSize: 4 })
    const sequence = Int32Array.from([...prompts[0]!, ...s!.tokens])
    const lp = tf.tidy(() =>
      tf.logSoftmax(forward(model, tf.tensor2d(sequence, [1, sequence.length], "int32"), { training: false })).dataSync() as Float32Array
    )
    const V = spec.vocabSize
    s!.tokens.forEach((t, j) => assert.closeTo(s!.logProbs[j]!, lp[(prompts[0]!.length - 1 + j) * V + t]!, 1e-4))
  })

  it("ends a row at a stop token, at `stopped`, at maxNewTokens or at the context", async () => {
    const free = await sampleRows(model, rows, { maxNewTokens: 6, sampler, batchSize: 8 })
    assert.deepStrictEqual(free.map((s) => s.finishReason), rows.map(() => "length"))
    const first = free[0]!.tokens[2]!
    const stopped = await sampleRows(model, rows, { maxNewTokens: 6, sampler, batchSize: 8, stopTokens: [first] })
    assert.strictEqual(stopped[0]!.finishReason, "stop")
    assert.isAtMost(stopped[0]!.tokens.length, 3)
    assert.strictEqual(stopped[0]!.tokens[stopped[0]!.tokens.length - 1], first)
    const byRule = await sampleRows(model, rows, { maxNewTokens: 6, sampler, batchSize: 8, stopped: (ids) => ids.length === 2 })
    assert.deepStrictEqual(byRule.map((s) => [s.finishReason, s.tokens.length]), rows.map(() => ["stop", 2]))
    const full = await sampleRows(model, [rows[0]!], { maxNewTokens: 100, sampler, batchSize: 1 })
    assert.strictEqual(full[0]!.finishReason, "context")
    assert.strictEqual(prompts[0]!.length + full[0]!.tokens.length, spec.context)
  })
})
