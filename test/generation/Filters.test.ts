import { assert, describe, it } from "@effect/vitest"
import { makeRng } from "../../src/domain/Random.js"
import type { SampleRules } from "../../src/generation/Filters.js"
import { activeRules, decide, droppedPerRule, jaccard, keepRows, ngramSet, normalizeWhitespace } from "../../src/generation/Filters.js"
import type { SampleRow } from "../fixtures/generations.js"
import { makeGenerations } from "../fixtures/generations.js"

const reasons = (rules: SampleRules, rows: ReadonlyArray<SampleRow>, scores = false) =>
  decide(rules, makeGenerations(rows, { scores })).map((d) => (d.keep ? "keep" : d.reason))

const row = (text: string, extra: Partial<SampleRow> = {}): SampleRow => ({ promptId: "p", text, ...extra })

describe("sample filters, rule by rule", () => {
  it("finish_reason keeps the listed reasons only", () => {
    const r = reasons({ finishReasons: ["stop"] }, [row("a", { finish: "stop" }), row("b", { finish: "length" }), row("c", { finish: "context" })])
    assert.deepStrictEqual(r, ["keep", "finish_reason: 'length' not in [stop]", "finish_reason: 'context' not in [stop]"])
  })

  it("min_tokens and max_tokens bound the generated token count", () => {
    const r = reasons({ minTokens: 2, maxTokens: 4 }, [row("a"), row("ab"), row("abcd"), row("abcde"), row("é")])
    // "é" is two UTF-8 bytes, so two byte tokens.
    assert.deepStrictEqual(r, ["min_tokens: 1 tokens < 2", "keep", "keep", "max_tokens: 5 tokens > 4", "keep"])
  })

  it("min_mean_log_prob reads the generator's mean, or the scorer's mean token log-prob", () => {
    const rows = [row("ab", { meanLogProb: -0.5, scored: -3 }), row("cd", { meanLogProb: -3, scored: -0.5 }), row("", { meanLogProb: 0 })]
    assert.deepStrictEqual(reasons({ minMeanLogProb: -1 }, rows), [
      "keep",
      "min_mean_log_prob: generator mean log-prob -3.000 < -1",
      "min_mean_log_prob: no generated tokens to average"
    ])
    assert.deepStrictEqual(reasons({ minMeanLogProb: -1, logProbBy: "scorer" }, rows, true), [
      "min_mean_log_prob: scorer mean log-prob -3.000 < -1",
      "keep",
      "min_mean_log_prob: no generated tokens to average"
    ])
  })

  it("exact_duplicate drops a later row of the same text after whitespace normalisation, keeping the first", () => {
    assert.strictEqual(normalizeWhitespace("  the\tcat \n sat "), "the cat sat")
    const r = reasons({ dedupe: "exact" }, [row("the cat sat"), row(" the  cat\nsat"), row("the cat sat."), row("the cat sat")])
    assert.deepStrictEqual(r, ["keep", "exact_duplicate: same text as row 0", "keep", "exact_duplicate: same text as row 0"])
  })

  it("near_duplicate drops at Jaccard >= threshold on crafted character 3-grams", () => {
    // {abc, bcd, cde, def} and {abc, bcd, cde, deg}: 3 shared of 5 in all, Jaccard 0.6.
    assert.strictEqual(jaccard(ngramSet(Array.from("abcdef"), 3), ngramSet(Array.from("abcdeg"), 3)), 0.6)
    const rows = [row("abcdef"), row("abcdeg")]
    assert.deepStrictEqual(reasons({ nearDuplicate: { threshold: 0.6, n: 3, unit: "chars" } }, rows), [
      "keep",
      "near_duplicate: Jaccard 0.600 >= 0.6 with row 0 (chars 3-grams)"
    ])
    assert.deepStrictEqual(reasons({ nearDuplicate: { threshold: 0.61, n: 3, unit: "chars" } }, rows), ["keep", "keep"])
  })

  it("near_duplicate over characters normalises whitespace; over tokens it does not", () => {
    const rows = [row("ab cd"), row("ab  cd")]
    assert.deepStrictEqual(reasons({ nearDuplicate: { threshold: 1, n: 2, unit: "chars" } }, rows), [
      "keep",
      "near_duplicate: Jaccard 1.000 >= 1 with row 0 (chars 2-grams)"
    ])
    // Byte 2-grams {ab, b_, _c, cd} and {ab, b_, __, _c, cd}: 4 of 5.
    assert.deepStrictEqual(reasons({ nearDuplicate: { threshold: 0.8, n: 2, unit: "tokens" } }, rows), [
      "keep",
      "near_duplicate: Jaccard 0.800 >= 0.8 with row 0 (tokens 2-grams)"
    ])
    assert.deepStrictEqual(reasons({ nearDuplicate: { threshold: 0.81, n: 2, unit: "tokens" } }, rows), ["keep", "keep"])
  })

  it("near_duplicate compares with kept rows only: a chain A ~ B ~ C with A !~ C keeps A and C", () => {
    // A = abcdef, B = abcdeg (0.6 with A), C = abcdhg: 0.6 with B, {abc, bcd} of 6 = 0.333 with A.
    const r = reasons({ nearDuplicate: { threshold: 0.5, n: 3, unit: "chars" } }, [row("abcdef"), row("abcdeg"), row("abcdhg")])
    assert.deepStrictEqual(r, ["keep", "near_duplicate: Jaccard 0.600 >= 0.5 with row 0 (chars 3-grams)", "keep"])
  })

  it("duplicatesWithin: prompt looks for duplicates among one prompt's samples only", () => {
    const rows = [row("same", { promptId: "a" }), row("same", { promptId: "b" }), row("same", { promptId: "a", sample: 1 })]
    assert.deepStrictEqual(reasons({ dedupe: "exact" }, rows), ["keep", "exact_duplicate: same text as row 0", "exact_duplicate: same text as row 0"])
    assert.deepStrictEqual(reasons({ dedupe: "exact", duplicatesWithin: "prompt" }, rows), ["keep", "keep", "exact_duplicate: same text as row 0"])
    assert.deepStrictEqual(reasons({ nearDuplicate: { threshold: 0.9, n: 2, unit: "chars" }, duplicatesWithin: "prompt" }, rows), [
      "keep",
      "keep",
      "near_duplicate: Jaccard 1.000 >= 0.9 with row 0 (chars 2-grams)"
    ])
  })

  it("near_duplicate: two empty texts are identical", () => {
    assert.deepStrictEqual(reasons({ nearDuplicate: { threshold: 0.9, n: 3, unit: "chars" } }, [row(""), row(" "), row("x")]), [
      "keep",
      "near_duplicate: Jaccard 1.000 >= 0.9 with row 0 (chars 3-grams)",
      "keep"
    ])
  })
})

describe("sample filters together", () => {
  const all: SampleRules = {
    finishReasons: ["stop"],
    minTokens: 3,
    maxTokens: 10,
    minMeanLogProb: -2,
    dedupe: "exact",
    nearDuplicate: { threshold: 0.5, n: 3, unit: "chars" }
  }

  it("apply in order; a dropped row names the first rule that dropped it", () => {
    assert.deepStrictEqual(
      activeRules(all).map((r) => r.rule),
      ["finish_reason", "min_tokens", "max_tokens", "min_mean_log_prob", "exact_duplicate", "near_duplicate"]
    )
    const rows = [
      row("ab", { finish: "length", meanLogProb: -5 }), // finish_reason, min_tokens and min_mean_log_prob all fail
      row("ab", { meanLogProb: -5 }), // min_tokens before min_mean_log_prob
      row("hello there", { meanLogProb: -5 }), // max_tokens before min_mean_log_prob
      row("abcdef", { meanLogProb: -5 }), // dropped by min_mean_log_prob, so it is no original for the next rows
      row("abcdef"),
      row("abcdef", { meanLogProb: -5 }), // min_mean_log_prob before exact_duplicate
      row("abcdef"),
      row("abcdeg")
    ]
    const decisions = decide(all, makeGenerations(rows))
    assert.deepStrictEqual(
      decisions.map((d) => d.rule ?? "keep"),
      ["finish_reason", "min_tokens", "max_tokens", "min_mean_log_prob", "keep", "min_mean_log_prob", "exact_duplicate", "near_duplicate"]
    )
    assert.strictEqual(decisions[6]!.reason, "exact_duplicate: same text as row 4")
    assert.match(decisions[4]!.reason, /^kept: 6 tokens, stop, generator mean log-prob -1\.000$/)
    assert.deepStrictEqual(droppedPerRule(all, decisions), [
      ["finish_reason", 1],
      ["min_tokens", 1],
      ["max_tokens", 1],
      ["min_mean_log_prob", 2],
      ["exact_duplicate", 1],
      ["near_duplicate", 1]
    ])
    assert.deepStrictEqual(droppedPerRule({ dedupe: "exact" }, decide({ dedupe: "exact" }, makeGenerations(rows))), [["exact_duplicate", 4]])
  })

  it("no rules keep every row", () => {
    assert.deepStrictEqual(reasons({}, [row("a"), row("a")]), ["keep", "keep"])
    assert.deepStrictEqual(activeRules({}), [])
  })

  it("the near-duplicate index finds what comparing every pair finds, and the same twice", () => {
    const rng = makeRng(7)
    const texts = Array.from({ length: 120 }, () =>
      Array.from({ length: 4 + rng.int(8) }, () => "abc"[rng.int(3)]).join("")
    )
    const rule = { threshold: 0.5, n: 3, unit: "chars" as const }
    const gen = makeGenerations(texts.map((t) => row(t)))
    const decisions = decide({ nearDuplicate: rule }, gen)
    const kept: Array<number> = []
    const expected = texts.map((t, g) => {
      const grams = ngramSet(Array.from(t), 3)
      const near = kept.some((k) => jaccard(grams, ngramSet(Array.from(texts[k]!), 3)) >= rule.threshold)
      if (!near) kept.push(g)
      return !near
    })
    assert.deepStrictEqual(
      decisions.map((d) => d.keep),
      expected
    )
    assert.isAbove(kept.length, 5)
    assert.isBelow(kept.length, 120)
    assert.deepStrictEqual(decide({ nearDuplicate: rule }, gen), decisions)
  })
})

describe("keepRows", () => {
  it("slices every per-row array, both token streams with their offsets, and the scores alike", () => {
    const gen = makeGenerations(
      [
        row("ab", { prompt: "P0", meanLogProb: -1, answer: "x" }),
        row("cde", { promptId: "q", sample: 1, prompt: "P1!", finish: "length", meanLogProb: -2 }),
        row("f", { promptId: "r", prompt: "", meanLogProb: -3, answer: "z" })
      ],
      { scores: true }
    )
    const kept = keepRows(gen, [false, true, true])
    assert.deepStrictEqual(kept.promptIds, ["q", "r"])
    assert.deepStrictEqual(Array.from(kept.sample), [1, 0])
    assert.deepStrictEqual(Array.from(kept.seeds), [101, 102])
    assert.deepStrictEqual(kept.prompts, ["P1!", ""])
    assert.deepStrictEqual(kept.texts, ["cde", "f"])
    assert.deepStrictEqual(kept.finishReasons, ["length", "stop"])
    assert.deepStrictEqual(Array.from(kept.meanLogProb), [-2, -3])
    assert.deepStrictEqual(kept.answers, [null, "z"])
    assert.deepStrictEqual(Array.from(kept.promptOffsets), [0, 3, 3])
    assert.deepStrictEqual(String.fromCharCode(...kept.promptTokens), "P1!")
    assert.deepStrictEqual(Array.from(kept.offsets), [0, 3, 4])
    assert.deepStrictEqual(String.fromCharCode(...kept.tokens), "cdef")
    // Positions 2..5 of the input (rows 1 and 2) are positions 0..3 here.
    const s = kept.scores!
    assert.deepStrictEqual(Array.from(s.tailLogProb), [-102, -103, -104, -105])
    assert.deepStrictEqual(Array.from(s.indices), [2, 3, 3, 4, 4, 5, 5, 6])
    assert.deepStrictEqual(Array.from(s.logProbs), [-2, -3, -3, -4, -4, -5, -5, -6])
    assert.strictEqual(s.tokenLogProb.length, 4)
    assert.strictEqual(s.k, 2)
    assert.strictEqual(kept.generator, gen.generator)
  })
})
