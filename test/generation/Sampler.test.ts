import { assert, describe, it } from "@effect/vitest"
import { makeRng } from "../../src/domain/Random.js"
import { argmax, distribution, sample } from "../../src/generation/Sampler.js"

/** Logits whose softmax is exactly `p`. */
const logitsOf = (p: ReadonlyArray<number>): Float32Array => Float32Array.from(p, Math.log)

const kept = (p: Float64Array): Array<number> => Array.from(p.keys()).filter((i) => p[i]! > 0)

const probs = [0.05, 0.4, 0.1, 0.3, 0.15]

describe("Sampler", () => {
  it("temperature 0 and top-k 1 pick the argmax", () => {
    const logits = logitsOf(probs)
    assert.strictEqual(argmax(logits), 1)
    const rng = makeRng(1)
    for (let i = 0; i < 20; i++) {
      assert.strictEqual(sample(logits, { temperature: 0 }, rng), 1)
      assert.strictEqual(sample(logits, { temperature: 1.5, topK: 1 }, rng), 1)
    }
  })

  it("temperature 1 keeps the model's distribution; lower temperatures sharpen it", () => {
    const p = distribution(logitsOf(probs), { temperature: 1 })
    probs.forEach((q, i) => assert.approximately(p[i]!, q, 1e-6))
    const cold = distribution(logitsOf(probs), { temperature: 0.5 })
    // p^(1/T) renormalised.
    const z = probs.reduce((s, q) => s + q * q, 0)
    probs.forEach((q, i) => assert.approximately(cold[i]!, (q * q) / z, 1e-6))
  })

  it("top-k keeps the k most likely; top-p the fewest whose mass reaches p; min-p those within a factor of the best", () => {
    const logits = logitsOf(probs)
    assert.deepStrictEqual(kept(distribution(logits, { temperature: 1, topK: 3 })), [1, 3, 4])
    // 0.4 + 0.3 = 0.7 reaches 0.7; 0.71 needs 0.15 more.
    assert.deepStrictEqual(kept(distribution(logits, { temperature: 1, topP: 0.7 })), [1, 3])
    assert.deepStrictEqual(kept(distribution(logits, { temperature: 1, topP: 0.71 })), [1, 3, 4])
    assert.deepStrictEqual(kept(distribution(logits, { temperature: 1, topP: 0.01 })), [1])
    // min-p 0.3: at least 0.12.
    assert.deepStrictEqual(kept(distribution(logits, { temperature: 1, minP: 0.3 })), [1, 3, 4])
    assert.deepStrictEqual(kept(distribution(logits, { temperature: 1, minP: 0.5 })), [1, 3])
    const p = distribution(logits, { temperature: 1, topK: 3, topP: 0.9 })
    // Top-p sees top-k's renormalised mass: 0.4/0.85 + 0.3/0.85 = 0.82 < 0.9, so all three stay.
    assert.deepStrictEqual(kept(p), [1, 3, 4])
    assert.approximately(p[1]!, 0.4 / 0.85, 1e-6)
    assert.approximately(p.reduce((s, x) => s + x, 0), 1, 1e-12)
  })

  it("draws follow the distribution, only from kept tokens, and repeat for a seed", () => {
    const logits = logitsOf(probs)
    const draw = (seed: number, n: number, settings = { temperature: 1 }) => {
      const rng = makeRng(seed)
      return Array.from({ length: n }, () => sample(logits, settings, rng))
    }
    assert.deepStrictEqual(draw(3, 50), draw(3, 50))
    assert.notDeepEqual(draw(3, 50), draw(4, 50))
    const counts = new Array(5).fill(0)
    for (const t of draw(5, 20000)) counts[t]++
    probs.forEach((q, i) => assert.approximately(counts[i] / 20000, q, 0.015))
    assert.isTrue(draw(6, 500, { temperature: 1, minP: 0.5 } as never).every((t) => t === 1 || t === 3))
  })
})
