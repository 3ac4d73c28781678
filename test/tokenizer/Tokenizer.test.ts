/**
 * What every tokenizer shares: pre-splitting into chunks that join back to the text, the merge step,
 * chunk counts, and save / load (round trip, malformed files rejected at their line) and the
 * artifact codec.
 */
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { decodeArtifact, encodeArtifact } from "../../src/cache/Codec.js"
import { chunkCounts, trainBpe } from "../../src/tokenizer/Bpe.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { chunksOf, load, mergePair, save } from "../../src/tokenizer/Tokenizer.js"
import { randomStrings } from "../fixtures/randomText.js"

describe("pre-splitting and merging", () => {
  it("cuts text into chunks that join back to it", () => {
    assert.deepStrictEqual(chunksOf("Hello, world's 42  end\n", "gpt2"), ["Hello", ",", " world", "'s", " 42", " ", " end", "\n"])
    for (const text of randomStrings(2, 200)) assert.strictEqual(chunksOf(text, "gpt2").join(""), text)
    assert.deepStrictEqual(chunksOf("", "none"), [])
  })
  it("merges non-overlapping occurrences left to right", () => {
    assert.deepStrictEqual(mergePair([1, 1, 1, 2, 1, 1], 1, 1, 9), [9, 1, 2, 9])
  })
  it("counts distinct chunks", () => {
    assert.deepStrictEqual([...chunkCounts(["a a", "a"], "gpt2")], [["a", 2], [" a", 1]])
  })
})

describe("save and load", () => {
  it("round-trip a trained tokenizer and a byte-level one", () => {
    const t = trainBpe(randomStrings(8, 50), { vocabSize: 400, special: ["<bos>", "a \"quoted\" name"] })
    assert.deepStrictEqual(Either.getOrThrow(load(save(t))), t)
    assert.deepStrictEqual(Either.getOrThrow(load(save(bytesTokenizer()))), bytesTokenizer())
  })
  it("reject a malformed file with the line at fault", () => {
    const text = save(trainBpe(["abab abab"], { vocabSize: 300, pattern: "none" })).replace(/\n97 98\n/, "\n97 400\n")
    const result = load(text)
    assert.isTrue(Either.isLeft(result))
    if (Either.isLeft(result)) assert.match(result.left.message, /^line \d+: expected merge 0/)
    assert.isTrue(Either.isLeft(load("not a tokenizer")))
  })
  it("survive the artifact codec", () => {
    const t = trainBpe(randomStrings(9, 50), { vocabSize: 320 })
    assert.deepStrictEqual(decodeArtifact(encodeArtifact(t)), t)
  })
})
