/**
 * Teacher-forced scoring: the top-k log-probs and the token's log-prob equal a full forward pass's
 * log-softmax, exp(top k) + exp(tail) sums to 1, batching does not change a row, and no tensor leaks.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import { scoreRows } from "../../src/generation/Score.js"
import type { Transformer } from "../../src/models/Transformer.js"
import { forward } from "../../src/models/Transformer.js"
import { TransformerSpec } from "../../src/models/TransformerSpec.js"
import { wideTransformer } from "../fixtures/transformer.js"

const spec = Schema.decodeUnknownSync(TransformerSpec)({ type: "transformer", vocabSize: 17, layers: 2, width: 16, heads: 2, context: 12 })

let model: Transformer
beforeAll(async () => {
  await initBackend("cpu")
  model = wideTransformer(spec, 5)
})

const rows = [
  { prompt: Int32Array.of(1, 2), tokens: Int32Array.of(3, 4, 5) },
  { prompt: Int32Array.of(6), tokens: Int32Array.of(7, 8) },
  { prompt: Int32Array.of(9, 10), tokens: Int32Array.of(11, 12, 13) },
  { prompt: Int32Array.of(14), tokens: new Int32Array(0) },
  // Longer than the context of 12: the first prompt tokens are dropped.
  { prompt: Int32Array.from({ length: 10 }, (_, i) => i), tokens: Int32Array.of(1, 2, 3, 4) }
]

/** (T, V) log-softmax of one sequence's full forward pass. */
const logSoftmax = (sequence: Int32Array): Float32Array =>
  tf.tidy(() => tf.logSoftmax(forward(model, tf.tensor2d(sequence, [1, sequence.length], "int32"), { training: false })).dataSync() as Float32Array)

describe("scoreRows", () => {
  it("equals a full forward pass's log-softmax, and the top k plus the tail hold all the probability", async () => {
    const before = tf.memory().numTensors
    const k = 5
    const s = await scoreRows(model, rows, k, 2)
    assert.strictEqual(tf.memory().numTensors, before)
    const V = spec.vocabSize
    let p = 0
    for (const r of rows) {
      const sequence = Int32Array.from([...r.prompt, ...r.tokens]).slice(-spec.context)
      const lp = logSoftmax(sequence)
      const first = sequence.length - r.tokens.length
      for (let j = 0; j < r.tokens.length; j++, p++) {
        const row = Array.from(lp.subarray((first - 1 + j) * V, (first + j) * V))
        const sorted = [...row].sort((a, b) => b - a)
        for (let i = 0; i < k; i++) {
          assert.closeTo(s.logProbs[p * k + i]!, sorted[i]!, 1e-4)
          assert.closeTo(row[s.indices[p * k + i]!]!, sorted[i]!, 1e-4)
        }
        assert.closeTo(s.tokenLogProb[p]!, row[r.tokens[j]!]!, 1e-4)
        let total = Math.exp(s.tailLogProb[p]!)
        for (let i = 0; i < k; i++) total += Math.exp(s.logProbs[p * k + i]!)
        assert.closeTo(total, 1, 1e-5)
      }
    }
    assert.strictEqual(p, s.tokenLogProb.length)
    const alone = await Promise.all(rows.map((r) => scoreRows(model, [r], k, 1)))
    assert.isBelow(Math.max(...Array.from(alone.flatMap((a) => Array.from(a.tokenLogProb)), (x, i) => Math.abs(x - s.tokenLogProb[i]!))), 1e-5)
  })

  it("keeps all V with a tail of -Infinity when k >= V, and refuses a continuation without a prompt", async () => {
    const s = await scoreRows(model, [rows[1]!], 100, 4)
    assert.strictEqual(s.k, spec.vocabSize)
    assert.deepStrictEqual(Array.from(s.tailLogProb), [-Infinity, -Infinity])
    await scoreRows(model, [{ prompt: new Int32Array(0), tokens: Int32Array.of(1) }], 3, 1).then(
      () => assert.fail("expected a refusal"),
      (e: Error) => assert.match(e.message, /needs at least one prompt token/)
    )
  })
})
