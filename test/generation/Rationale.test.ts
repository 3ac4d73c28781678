/** The rationale parser: numbers, labels, text, unparseable outputs, answer patterns, and self-consistency's majority. */
import { assert, describe, it } from "@effect/vitest"
import { checkAnswerPattern, DefaultAnswerPattern, majority, normaliseAnswer, normaliseNumber, parseRationale } from "../../src/generation/Rationale.js"

const pattern = new RegExp(DefaultAnswerPattern)

describe("rationale parser", () => {
  it("normalises numbers", () => {
    assert.strictEqual(normaliseNumber("1,234"), "1234")
    assert.strictEqual(normaliseNumber("14.0"), "14")
    assert.strictEqual(normaliseNumber("$1,234.50"), "1234.5")
    assert.strictEqual(normaliseNumber("-007"), "-7")
    assert.strictEqual(normaliseNumber(".5 apples"), "0.5")
    assert.strictEqual(normaliseNumber("about 42 eggs"), "42")
    assert.strictEqual(normaliseNumber("-0.0"), "0")
    assert.isUndefined(normaliseNumber("twelve"))
  })

  it("normalises labels and text", () => {
    assert.strictEqual(normaliseAnswer(" (B). ", "label"), "b")
    assert.strictEqual(normaliseAnswer("\"Yes!\"", "label"), "yes")
    assert.strictEqual(normaliseAnswer("**Entailment**", "label"), "entailment")
    assert.isUndefined(normaliseAnswer(" ... ", "label"))
    assert.strictEqual(normaliseAnswer("  New   York. ", "text"), "New York")
  })

  it("splits rationale and answer at the first match, and says why an output is unparseable", () => {
    const ok = parseRationale("Tom has 3 and buys 11 more, 3 + 11 = 14. The answer is 14.0.\nQ: next", pattern, "number")
    assert.deepStrictEqual(ok, { ok: true, answer: "14", raw: "14.0", rationale: "Tom has 3 and buys 11 more, 3 + 11 = 14." })
    assert.deepStrictEqual(parseRationale("so the answer is 1,234", pattern, "number"), { ok: true, answer: "1234", raw: "1,234", rationale: "so" })
    assert.deepStrictEqual(parseRationale("The answer is: (C).", pattern, "label"), { ok: true, answer: "c", raw: "(C)", rationale: "" })
    assert.deepStrictEqual(parseRationale("I do not know.", pattern, "number"), { ok: false, matched: false, reason: "no match of the answer pattern" })
    assert.deepStrictEqual(parseRationale("The answer is many.", pattern, "number"), { ok: false, matched: true, reason: "no number in answer \"many\"" })
    assert.deepStrictEqual(parseRationale("The answer is .", pattern, "text"), { ok: false, matched: true, reason: "empty answer" })
    // A custom pattern.
    assert.deepStrictEqual(parseRationale("thinking... #### 72", /####\s*(\S+)/, "number"), { ok: true, answer: "72", raw: "72", rationale: "thinking..." })
  })

  it("checks that a pattern is a regex with exactly one capture group", () => {
    assert.isUndefined(checkAnswerPattern(DefaultAnswerPattern))
    assert.isUndefined(checkAnswerPattern("(?:A|B): (\\w+)"))
    assert.include(checkAnswerPattern("(a)(b)") ?? "", "2 capture groups")
    assert.include(checkAnswerPattern("no group") ?? "", "0 capture groups")
    assert.include(checkAnswerPattern("(unclosed") ?? "", "not a regular expression")
  })

  it("finds the majority answer and its agreement over all of a prompt's samples", () => {
    assert.deepStrictEqual(majority(["14", "14", "12", undefined, "14"]), { answer: "14", votes: 3, agreement: 0.6 })
    // A tie goes to the answer that reached the count first.
    assert.deepStrictEqual(majority(["a", "b", "b", "a"]), { answer: "b", votes: 2, agreement: 0.5 })
    assert.deepStrictEqual(majority([undefined, undefined]), { answer: undefined, votes: 0, agreement: 0 })
  })
})
