/**
 * The near-duplicate rule by MinHash + LSH (generation/Filters.ts): on a set with planted near duplicates
 * it drops (nearly) the pairs exact Jaccard drops and keeps the different texts; seeded and
 * deterministic; its settings are checked; method jaccard is the exact rule, unchanged.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { makeRng } from "../../src/domain/Random.js"
import type { NearDuplicateRule } from "../../src/generation/Filters.js"
import { checkNearDuplicate, decide, jaccard, minHashSalts, minHashSignature, minHashSimilarity, ngramSet } from "../../src/generation/Filters.js"
import { LmFilterKind, LmFilterParams } from "../../src/nodes/lm/filter.js"
import { runKind } from "../fixtures/context.js"
import { makeGenerations } from "../fixtures/generations.js"

const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu"]

/** 40 random 30-word texts, and for 15 of them a copy with one word changed (a planted near duplicate). */
const planted = () => {
  const rng = makeRng(11)
  const texts: Array<string> = []
  for (let i = 0; i < 40; i++) texts.push(Array.from({ length: 30 }, () => words[rng.int(words.length)]!).join(" "))
  const twins: Array<readonly [number, number]> = []
  for (let i = 0; i < 15; i++) {
    const source = texts[i * 2]!.split(" ")
    source[rng.int(source.length)] = "zzzz"
    twins.push([i * 2, texts.length])
    texts.push(source.join(" "))
  }
  return { texts, twins }
}

const dropped = (rule: NearDuplicateRule, texts: ReadonlyArray<string>) =>
  decide({ nearDuplicate: rule }, makeGenerations(texts.map((text) => ({ promptId: "p", text }))))
    .flatMap((d, g) => (d.keep ? [] : [g]))

describe("near duplicates by MinHash", () => {
  it("drops (nearly) the rows exact Jaccard drops on planted near duplicates, and keeps the different texts", () => {
    const { texts, twins } = planted()
    const exact = dropped({ threshold: 0.7, n: 5, unit: "chars" }, texts)
    const minhash = dropped({ threshold: 0.7, n: 5, unit: "chars", method: "minhash", permutations: 128, bands: 32, seed: 3 }, texts)
    // Every planted copy is a near duplicate by exact Jaccard, and nothing else is.
    assert.deepStrictEqual(exact, twins.map(([, copy]) => copy))
    const shared = minhash.filter((g) => exact.includes(g)).length
    assert.isAtLeast(shared, exact.length - 1, `minhash found ${shared} of ${exact.length}`)
    assert.isAtMost(minhash.length - shared, 1, "minhash dropped a different text")
    // The estimate is close to the exact similarity for every planted pair.
    const salts = minHashSalts(128, 3)
    for (const [a, b] of twins) {
      const [A, B] = [ngramSet(Array.from(texts[a]!), 5), ngramSet(Array.from(texts[b]!), 5)]
      assert.closeTo(minHashSimilarity(minHashSignature(A, salts), minHashSignature(B, salts)), jaccard(A, B), 0.15)
    }
  })

  it("is deterministic for a seed, reasons name the estimate, and identical and empty texts are duplicates", () => {
    const rule: NearDuplicateRule = { threshold: 0.8, n: 3, unit: "chars", method: "minhash", seed: 5 }
    const gen = makeGenerations(["the cat sat on the mat", "the cat sat on the mat", "a dog ran in the park", "", ""].map((text) => ({ promptId: "p", text })))
    const first = decide({ nearDuplicate: rule }, gen)
    assert.deepStrictEqual(decide({ nearDuplicate: rule }, gen), first)
    assert.deepStrictEqual(first.map((d) => d.keep), [true, false, true, true, false])
    assert.match(first[1]!.reason, /^near_duplicate: MinHash Jaccard ~1\.000 >= 0\.8 with row 0 \(chars 3-grams, 128 permutations, 32 bands\)$/)
    // Different seeds are different hash functions.
    assert.notDeepEqual(Array.from(minHashSalts(8, 1)), Array.from(minHashSalts(8, 2)))
  })

  it("checks the settings: bands must divide permutations, and apply to minhash only", () => {
    assert.strictEqual(checkNearDuplicate({ method: "minhash" }), undefined)
    assert.match(checkNearDuplicate({ method: "minhash", permutations: 100, bands: 32 })!, /bands 32 must divide permutations 100/)
    assert.match(checkNearDuplicate({ permutations: 64 })!, /apply to method: minhash only/)
    assert.throws(() => Schema.decodeUnknownSync(LmFilterParams)({ nearDuplicate: { threshold: 0.8, method: "minhash", permutations: 10, bands: 4 } }), /must divide/)
  })

  it("lm_filter exposes it, seeded by the node's seed", async () => {
    const { texts, twins } = planted()
    const samples = makeGenerations(texts.map((text, g) => ({ promptId: `p${g}`, text })))
    const run = (seed: number) => runKind<{ samples: { texts: Array<string> } }>(LmFilterKind, { nearDuplicate: { threshold: 0.7, method: "minhash" } }, { samples }, { seed })
    const a = await run(1)
    assert.deepStrictEqual(a.recorded.examples, (await run(1)).recorded.examples)
    const droppedRows = a.recorded.examples.filter((e) => e.decision === "drop").map((e) => e.exampleId)
    assert.isAtLeast(droppedRows.filter((g) => twins.some(([, c]) => c === g)).length, twins.length - 1)
    assert.isAtMost(droppedRows.length, twins.length + 1)
    assert.include(String((a.recorded.info.rules as Array<{ description: string }>).at(-1)!.description), "MinHash estimate (128 permutations, 32 LSH bands")
  })
})
