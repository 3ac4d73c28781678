/**
 * The pure scoring of lm_task_evaluate (generation/TaskScore.ts): exact match after normalisation,
 * a chain of thought's answer by pattern, SQuAD token F1 and sentence BLEU on hand-computed cases,
 * and source example ids of lm_parse documents.
 */
import { assert, describe, it } from "@effect/vitest"
import { DefaultAnswerPattern } from "../../src/generation/Rationale.js"
import {
  firstLine,
  mean,
  rationaleExact,
  rationaleTokens,
  scoreAnswer,
  scoreCompletion,
  scoreRationale,
  sentenceBleu,
  sourceIdOf,
  tokenF1
} from "../../src/generation/TaskScore.js"

const close = (a: number, b: number, tol = 1e-9) => assert.isTrue(Math.abs(a - b) < tol, `${a} vs ${b}`)

describe("TaskScore", () => {
  it("cuts the output at its first newline", () => {
    assert.strictEqual(firstLine(" 14.\nQuestion: more"), "14.")
    assert.strictEqual(firstLine("  yes  "), "yes")
    assert.strictEqual(firstLine("\nfoo"), "")
  })

  it("answer target: the whole output, normalised, against the gold answer normalised", () => {
    assert.deepStrictEqual(scoreAnswer("14.", "14", "text"), { correct: true, answer: "14", gold: "14", reason: "correct" })
    assert.isTrue(scoreAnswer("1,234", "1234.0", "number").correct)
    assert.isTrue(scoreAnswer("(Yes)", "yes", "label").correct)
    assert.isFalse(scoreAnswer("Yes", "yes", "text").correct)
    const wrong = scoreAnswer("12", "14", "number")
    assert.deepStrictEqual([wrong.correct, wrong.reason], [false, "wrong answer: got 12, gold 14"])
    assert.deepStrictEqual(scoreAnswer("", "14", "text").reason, "empty output, gold 14")
    assert.match(scoreAnswer("many", "14", "number").reason, /^no number in output "many", gold 14$/)
  })

  it("completion target: the pattern's answer in a chain of thought", () => {
    const p = new RegExp(DefaultAnswerPattern)
    assert.isTrue(scoreCompletion("3 + 11 = 14. The answer is 14.", "14", p, "number").correct)
    const wrong = scoreCompletion("3 + 11 = 15. The answer is 15.", "14", p, "number")
    assert.deepStrictEqual([wrong.correct, wrong.answer, wrong.reason], [false, "15", "wrong answer: got 15, gold 14"])
    const none = scoreCompletion("3 + 11 = 14", "14", p, "number")
    assert.deepStrictEqual([none.correct, none.answer, none.reason], [false, undefined, "unparseable: no match of the answer pattern, gold 14"])
    assert.isTrue(scoreCompletion("So: ANSWER=abc", "abc", /ANSWER=(\w+)/, "text").correct)
  })

  it("token F1 as SQuAD computes it", () => {
    assert.deepStrictEqual(rationaleTokens("3 + 11 = 14. Then, Tom"), ["3", "11", "14", "then", "tom"])
    close(tokenF1("the cat sat", "the cat sat"), 1)
    // prediction 4 tokens, reference 3, overlap 2: p = 1/2, r = 2/3, F1 = 2pr/(p+r) = 4/7.
    close(tokenF1("the cat ate fish", "a cat ate"), 4 / 7)
    // Multiset overlap: "a a a" vs "a b": common 1, p = 1/3, r = 1/2, F1 = 0.4.
    close(tokenF1("a a a", "a b"), 0.4)
    close(tokenF1("x y", "z"), 0)
    close(tokenF1("", ""), 1)
    close(tokenF1("x", ""), 0)
    close(tokenF1("", "x"), 0)
  })

  it("exact rationale match collapses whitespace and a trailing period", () => {
    assert.isTrue(rationaleExact(" 3 + 11  = 14.", "3 + 11 = 14"))
    assert.isFalse(rationaleExact("3 + 11 = 14", "3 + 11 = 15"))
  })

  it("sentence BLEU: 1 for an identical sentence, the brevity penalty and smoothing by hand", () => {
    close(sentenceBleu("a b c d e", ["a b c d e"]), 1)
    assert.strictEqual(sentenceBleu("", ["a b"]), 0)
    // "a b c d" vs "a b c d e f": every precision 1, brevity exp(1 - 6/4).
    close(sentenceBleu("a b c d", ["a b c d e f"]), Math.exp(1 - 6 / 4))
    // "a b x" vs "a b": p1 = 2/3, p2 = 1/2, p3 = 0 -> 0.1/1, no 4-grams -> 0.1; no brevity penalty.
    close(sentenceBleu("a b x", ["a b"]), Math.exp((Math.log(2 / 3) + Math.log(1 / 2) + Math.log(0.1) + Math.log(0.1)) / 4))
  })

  it("a rationale against several references takes the best", () => {
    const s = scoreRationale("3 + 11 = 14", ["something else", "3 + 11 = 14."])
    assert.isTrue(s.exact)
    close(s.f1, 1)
    assert.strictEqual(s.reason, "exact")
    const partial = scoreRationale("3 + 11 = 15", ["3 + 11 = 14"])
    close(partial.f1, 2 / 3)
    assert.isFalse(partial.exact)
    assert.match(partial.reason, /^f1 0\.667 against "3 \+ 11 = 14"$/)
  })

  it("an lm_parse document's source example id", () => {
    assert.strictEqual(sourceIdOf("arithmetic-3#2", undefined), "arithmetic-3")
    assert.strictEqual(sourceIdOf("x#0", { promptId: "p#1" }), "p#1")
    assert.strictEqual(sourceIdOf("plain", {}), "plain")
    assert.isNaN(mean([]))
    close(mean([1, 0, 1, 1]), 0.75)
  })
})
