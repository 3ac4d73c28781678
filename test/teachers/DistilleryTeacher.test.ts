/**
 * The teacher interface over a Distillery model gives what generation/Sample.ts and Score.ts give
 * directly: the same tokens, log-probs and finish reasons per seeded row, and top-k + tail per position.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import { sampleRows } from "../../src/generation/Sample.js"
import { scoreRows } from "../../src/generation/Score.js"
import { transformerFromWeights } from "../../src/models/Transformer.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import * as DistilleryTeacher from "../../src/teachers/DistilleryTeacher.js"
import type { SampleOutcome } from "../../src/teachers/Teacher.js"
import { encode } from "../../src/tokenizer/Tokenizer.js"
import { tinyLm } from "./loopback.js"

describe("DistilleryTeacher", () => {
  it("samples and scores as generation/ does", async () => {
    await initBackend("cpu")
    const lm = tinyLm(3)
    const rows = ["The jury", "It was"].map((text, i) => ({ id: `p${i}`, text, tokens: Int32Array.from(encode(lm.tokenizer, text)), seed: 40 + i }))
    const settings = { temperature: 1, topK: 0, topP: 1, minP: 0, maxNewTokens: 6, stop: [], topLogprobs: 4, batchSize: 2 }
    const teacher = DistilleryTeacher.make(lm)
    const outcomes = await Effect.runPromise(teacher.sample(rows, settings))
    const net = transformerFromWeights(decodeTransformerSpec(lm.spec), lm.weights)
    try {
      const eos = lm.tokenizer.special["<eos>"]!
      const direct = await sampleRows(net, rows.map((r) => ({ prompt: r.tokens, seed: r.seed })), { maxNewTokens: 6, sampler: settings, batchSize: 2, stopTokens: [eos] })
      const scored = await scoreRows(net, rows.map((r, i) => ({ prompt: r.tokens, tokens: direct[i]!.tokens })), 4, 2)
      let at = 0
      outcomes.forEach((o: SampleOutcome, i) => {
        assert.strictEqual(o._tag, "Sampled")
        const s = (o as Extract<SampleOutcome, { _tag: "Sampled" }>).sample
        assert.deepStrictEqual(Array.from(s.tokens!), Array.from(direct[i]!.tokens))
        assert.deepStrictEqual(Array.from(s.tokenLogProbs!), Array.from(direct[i]!.logProbs))
        assert.strictEqual(s.finishReason, direct[i]!.finishReason)
        const P = s.tokens!.length
        assert.deepStrictEqual(Array.from(s.top!.indices!), Array.from(scored.indices.subarray(at * 4, (at + P) * 4)))
        assert.deepStrictEqual(Array.from(s.top!.tailLogProb), Array.from(scored.tailLogProb.subarray(at, at + P)))
        at += P
      })
      const again = await Effect.runPromise(teacher.score(rows.map((r, i) => ({ prompt: r.tokens, tokens: direct[i]!.tokens })), 4, 2))
      assert.deepStrictEqual(Array.from(again.logProbs), Array.from(scored.logProbs))
    } finally {
      net.dispose()
    }
  })
})
