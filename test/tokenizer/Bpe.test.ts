/**
 * BPE training: the most frequent pair first, ties to the smallest pair, stops when no pair occurs
 * twice; deterministic; encode then decode is the identity on random UTF-8 text (merges inside
 * multi-byte characters included); compresses held-out Brown text; chunk encoding matches minbpe's loop.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { loadTextCorpus, splitTexts } from "../../src/data/text.js"
import { trainBpe } from "../../src/tokenizer/Bpe.js"
import { decode, decodeBytes, encode, encodeChunk, mergePair, pairKey } from "../../src/tokenizer/Tokenizer.js"
import { randomStrings, roundTrips } from "../fixtures/randomText.js"

const brownSlice = Effect.map(
  loadTextCorpus({ source: "brown", limit: 40, validation: 0.1, test: 0.2, onLong: "fail", seed: 7 }),
  ({ corpus }) => corpus
)

describe("BPE", () => {
  it("merges the most frequent pair first and breaks ties by the smallest pair", () => {
    // ab, bc and cd each occur twice: (a, b) is the smallest; then cd (99, 100) comes before (256, c).
    const t = trainBpe(["abcd abcd"], { vocabSize: 258, special: [], pattern: "none" })
    assert.deepStrictEqual([...t.merges], [97, 98, 99, 100])
    assert.deepStrictEqual(encode(t, "abcd"), [256, 257])
  })

  it("encodes a chunk as minbpe's plain loop does, long chunks included", () => {
    // minbpe `encode`: merge the earliest-learned pair present, everywhere, until none is learned.
    const reference = (bytes: Uint8Array, merges: Int32Array): Array<number> => {
      let ids = Array.from(bytes)
      for (;;) {
        let best = Infinity
        for (let i = 0; i + 1 < ids.length; i++) {
          for (let m = 0; m < merges.length / 2 && m < best; m++) {
            if (merges[2 * m] === ids[i] && merges[2 * m + 1] === ids[i + 1]) best = m
          }
        }
        if (best === Infinity) return ids
        ids = mergePair(ids, merges[2 * best]!, merges[2 * best + 1]!, 256 + best)
      }
    }
    const t = trainBpe(["aaaaaaa abababab aab", ...randomStrings(10, 100)], { vocabSize: 400, pattern: "none" })
    const rank = new Map(Array.from({ length: t.merges.length / 2 }, (_, m) => [pairKey(t.merges[2 * m]!, t.merges[2 * m + 1]!), m] as const))
    const utf8 = new TextEncoder()
    for (const text of ["aaaaaaaaa", "abababab aab", ...randomStrings(11, 100)]) {
      const bytes = utf8.encode(text)
      assert.deepStrictEqual(encodeChunk(bytes, rank), reference(bytes, t.merges), JSON.stringify(text))
    }
    const long = "ab".repeat(50_000)
    assert.strictEqual(decode(t, encode(t, long)), long)
  })

  it("stops when no pair occurs twice and numbers the special tokens after the merges", () => {
    const t = trainBpe(["aaaa aaaa"], { vocabSize: 1000, special: ["<eos>"], pattern: "none" })
    assert.deepStrictEqual([...t.merges], [97, 97, 256, 256])
    assert.strictEqual(t.vocabSize, 259)
    assert.deepStrictEqual(t.special, { "<eos>": 258 })
  })

  it("round-trips random UTF-8 text, with merges inside multi-byte characters", () => {
    // Trained on random multi-byte text, merges split characters at byte boundaries.
    const t = trainBpe(randomStrings(3, 300), { vocabSize: 700 })
    assert.isAbove(t.merges.length / 2, 100)
    roundTrips(t, randomStrings(4, 300))
    roundTrips(trainBpe(randomStrings(5, 100), { vocabSize: 500, pattern: "none" }), randomStrings(6, 100))
  })

  it.effect("is deterministic, compresses held-out Brown text and round-trips it", () =>
    Effect.gen(function* () {
      const corpus = yield* brownSlice
      const train = splitTexts(corpus, "train")
      const a = trainBpe(train, { vocabSize: 512 })
      const b = trainBpe(train, { vocabSize: 512 })
      assert.deepStrictEqual(a, b)
      assert.strictEqual(a.vocabSize, 512)
      let bytes = 0
      let tokens = 0
      for (const text of splitTexts(corpus, "test")) {
        const ids = encode(a, text)
        assert.strictEqual(decode(a, ids), text)
        bytes += decodeBytes(a, ids).length
        tokens += ids.length
      }
      assert.isAbove(bytes / tokens, 2, `bytes per token ${bytes / tokens}`)
      // A larger vocabulary starts with the same merges.
      const c = trainBpe(train, { vocabSize: 600 })
      assert.deepStrictEqual([...c.merges.subarray(0, a.merges.length)], [...a.merges])
    })
  )
})
