import { assert, describe, it } from "@effect/vitest"
import { distinctN, normaliseAnswer, repetitionRate, selfBleu } from "../../src/generation/Diversity.js"

describe("diversity measures", () => {
  it("distinct-n counts distinct n-grams over all n-grams, never across samples", () => {
    assert.strictEqual(distinctN([[1, 2, 1, 2]], 1), 2 / 4)
    assert.strictEqual(distinctN([[1, 2, 1, 2]], 2), 2 / 3)
    assert.strictEqual(distinctN([[1, 2], [3, 4]], 2), 1)
    assert.strictEqual(distinctN([[1]], 2), 0)
  })

  it("repetition rate is the mean per sample of the 4-grams seen earlier in it", () => {
    assert.strictEqual(repetitionRate([[1, 2, 3, 4, 5, 6]]), 0)
    // 1 2 3 4 1 2 3 4: 5 four-grams, the last one repeats the first.
    assert.strictEqual(repetitionRate([[1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3]]), 1 / 5)
    assert.strictEqual(repetitionRate([[7, 7, 7, 7, 7, 7]]), 2 / 3)
  })

  it("self-BLEU is 1 for identical samples and low for disjoint ones", () => {
    assert.closeTo(selfBleu([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]]), 1, 1e-12)
    assert.isBelow(selfBleu([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]), 0.1)
    assert.isNaN(selfBleu([[1, 2, 3]]))
  })

  it("normalises answers: case, whitespace and outer punctuation", () => {
    assert.strictEqual(normaliseAnswer("  The  Answer is 42.\n"), "the answer is 42")
    assert.strictEqual(normaliseAnswer('"Paris!"'), "paris")
  })
})
