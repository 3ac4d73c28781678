/**
 * The judge's decision (generation/Judge.ts) from its replies: a score at or above the threshold keeps,
 * below drops, a reply without a score and a failed request drop with their reasons; the score and
 * rubric checks.
 */
import { assert, describe, it } from "@effect/vitest"
import type { SampleOutcome } from "../../src/teachers/Teacher.js"
import { checkJudge, checkScorePattern, DefaultScorePattern, judge, judgeNeverScored, parseRubric, parseScore, renderRubric } from "../../src/generation/Judge.js"

const said = (text: string): SampleOutcome => ({ _tag: "Sampled", sample: { text, finishReason: "stop" } })
const pattern = new RegExp(DefaultScorePattern)

describe("judge decisions", () => {
  it("keeps a score at or above the threshold, drops one below, a reply without a score and a failed request", () => {
    assert.deepStrictEqual(judge(said("Correct and clear. Score: 5"), pattern, 4), {
      keep: true,
      score: 5,
      reply: "Correct and clear. Score: 5",
      outcome: "scored",
      reason: "judge score 5 >= 4"
    })
    assert.strictEqual(judge(said("Score: 4"), pattern, 4).keep, true)
    const low = judge(said("score: 3.5 because the arithmetic is off"), pattern, 4)
    assert.deepStrictEqual([low.keep, low.score, low.reason], [false, 3.5, "judge: score 3.5 < 4"])
    const none = judge(said("I think it is fine, really quite fine, no complaints at all about this one, a very good rationale indeed"), pattern, 4)
    assert.deepStrictEqual([none.keep, none.score, none.outcome], [false, null, "no_score"])
    assert.strictEqual(none.reason, `judge: no score in "I think it is fine, really quite fine, no complaints at all about this one, a ve…"`)
    const failed = judge({ _tag: "Failed", error: "HTTP 500" }, pattern, 4)
    assert.deepStrictEqual(failed, { keep: false, score: null, reply: null, outcome: "failed", reason: "judge: failed: HTTP 500" })
    assert.strictEqual(judge(said("Score: -2"), pattern, -3).keep, true)
  })

  it("reads the first match's number, and nothing from a non-number capture", () => {
    assert.strictEqual(parseScore("Score: 2 ... Score: 5", pattern), 2)
    assert.strictEqual(parseScore("Rating 7/10", /Rating (\d+)\/10/), 7)
    assert.strictEqual(parseScore("Rating: good", /Rating: (\w+)/), undefined)
    assert.strictEqual(parseScore("nothing", pattern), undefined)
  })

  it("says when a judge never scored", () => {
    const p = (text: string) => judge(said(text), pattern, 1)
    assert.isTrue(judgeNeverScored([p("ok"), p("fine")]))
    assert.isFalse(judgeNeverScored([p("ok"), p("Score: 1")]))
    assert.isFalse(judgeNeverScored([]))
  })

  it("refuses a score pattern without exactly one group, and a rubric naming an unknown variable", () => {
    assert.strictEqual(checkScorePattern(DefaultScorePattern), undefined)
    assert.match(checkScorePattern("Score: \\d+")!, /has 0 capture groups; it needs exactly one, around the score/)
    assert.match(checkScorePattern("(a)(b)")!, /has 2 capture groups/)
    assert.match(checkScorePattern("(")!, /not a regular expression/)
    const bad = parseRubric("Q: {question}\nR: {reasoning}\nScore:")
    assert.isTrue("error" in bad)
    assert.strictEqual(
      (bad as { error: string }).error,
      "rubric names {reasoning}, which is not a judge variable; the valid ones are {question}, {prompt}, {rationale}, {answer}, {completion}, {gold}"
    )
    assert.match(checkJudge({ rubric: "{answer" })!, /^judge: rubric: '\{' at column 1/)
    const ok = parseRubric("Q: {question} A: {answer} because {rationale}. {{Score}}:")
    assert.isFalse("error" in ok)
    const text = renderRubric((ok as { parts: any }).parts, { question: "1+1?", prompt: "Q: 1+1?", rationale: "one and one", answer: "2", completion: "", gold: "" })
    assert.strictEqual(text, "Q: 1+1? A: 2 because one and one. {Score}:")
  })
})
