/**
 * Tokenizers: encode then decode is the identity on random UTF-8 text (ASCII, multi-byte characters,
 * emoji, CJK, combining marks, control bytes, the empty string) for the byte-level tokenizer and for
 * BPE; BPE training is deterministic, breaks ties by the smallest pair, and compresses held-out Brown
 * text; save / load round-trip and reject malformed files.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { decodeArtifact, encodeArtifact } from "../../src/cache/Codec.js"
import { loadTextCorpus, splitTexts } from "../../src/data/text.js"
import type { Tokenizer } from "../../src/domain/Artifact.js"
import { makeRng } from "../../src/domain/Random.js"
import { chunkCounts, trainBpe } from "../../src/tokenizer/Bpe.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import {
  chunksOf,
  decode,
  decodeBytes,
  encode,
  encodeChunk,
  load,
  mergePair,
  pairKey,
  save,
  specialId
} from "../../src/tokenizer/Tokenizer.js"

/** Code point ranges a random string draws from, each equally likely. */
const POOLS: ReadonlyArray<readonly [number, number]> = [
  [0x20, 0x7e], // printable ASCII
  [0x00, 0x1f], // control bytes, including \t \n \r and NUL
  [0x7f, 0x7f],
  [0xc0, 0x17f], // Latin-1 and Latin Extended-A
  [0x300, 0x36f], // combining marks
  [0x391, 0x3c9], // Greek
  [0x600, 0x6ff], // Arabic
  [0x4e00, 0x9fff], // CJK
  [0xac00, 0xd7a3], // Hangul
  [0x1f300, 0x1f64f], // emoji (4-byte UTF-8)
  [0x200d, 0x200d], // zero-width joiner
  [0xfe0f, 0xfe0f], // variation selector
  [0x10000, 0x1007f] // Linear B, another astral plane block
]

const randomString = (rng: ReturnType<typeof makeRng>, maxLength: number): string => {
  const length = rng.int(maxLength + 1)
  let s = ""
  for (let i = 0; i < length; i++) {
    const [lo, hi] = POOLS[rng.int(POOLS.length)]!
    s += String.fromCodePoint(lo + rng.int(hi - lo + 1))
    if (rng.next() < 0.15) s += " "
  }
  return s
}

const randomStrings = (seed: number, count: number, maxLength = 80): Array<string> => {
  const rng = makeRng(seed)
  return ["", " ", "\u0000", "e\u0301", "👩‍👩‍👧", "漢字かな", ...Array.from({ length: count }, () => randomString(rng, maxLength))]
}

const roundTrips = (tokenizer: Tokenizer, texts: ReadonlyArray<string>) => {
  for (const text of texts) {
    const ids = encode(tokenizer, text)
    for (const id of ids) assert.isTrue(id >= 0 && id < tokenizer.vocabSize, `id ${id} outside the vocabulary`)
    assert.strictEqual(decode(tokenizer, ids), text, `round trip of ${JSON.stringify(text)}`)
  }
}

const brownSlice = Effect.map(
  loadTextCorpus({ source: "brown", limit: 40, validation: 0.1, test: 0.2, onLong: "fail", seed: 7 }),
  ({ corpus }) => corpus
)

describe("byte-level tokenizer", () => {
  const bytes = bytesTokenizer()
  it("has the 256 bytes and the special tokens after them", () => {
    assert.strictEqual(bytes.vocabSize, 259)
    assert.deepStrictEqual(bytes.special, { "<pad>": 256, "<bos>": 257, "<eos>": 258 })
    assert.deepStrictEqual(encode(bytes, "aé"), [0x61, 0xc3, 0xa9])
    assert.strictEqual(decode(bytes, [specialId(bytes, "<bos>"), 0x68, 0x69]), "<bos>hi")
  })
  it("round-trips random UTF-8 text", () => roundTrips(bytes, randomStrings(1, 300)))
  it("never produces a special token from text", () => {
    assert.deepStrictEqual(encode(bytes, "<eos>"), Array.from(new TextEncoder().encode("<eos>")))
  })
})

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
