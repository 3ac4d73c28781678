import { assert, describe, it } from "@effect/vitest"
import type { Generations, TextCorpus } from "../../src/domain/Artifact.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { packCorpus, packedRows, packScored, targetBytes } from "../../src/tokenizer/Pack.js"

const tok = bytesTokenizer() // <pad> 256, <bos> 257, <eos> 258
const corpus = (extra: Partial<TextCorpus>): TextCorpus => ({
  _tag: "TextCorpus",
  name: "t",
  ids: ["a", "b"],
  texts: ["ab", "cdé"],
  splits: { train: Int32Array.of(0, 1), validation: new Int32Array(0), test: new Int32Array(0) },
  ...extra
})

describe("packCorpus", () => {
  it("concatenates documents with <eos>, cuts windows of T + 1 overlapping by one, drops the tail", () => {
    // Stream: a b <eos> c d é(2 bytes) <eos> = 8 tokens -> floor(7 / 3) = 2 windows of T = 3.
    const p = packCorpus(tok, corpus({}), "train", 3)
    assert.strictEqual(packedRows(p), 2)
    assert.deepStrictEqual(Array.from(p.inputs), [97, 98, 258, 99, 100, 0xc3])
    assert.deepStrictEqual(Array.from(p.targets), [98, 258, 99, 100, 0xc3, 0xa9])
    // Bytes per target: <eos> is not text.
    assert.deepStrictEqual(Array.from(targetBytes(tok, p.targets)), [1, 0, 1, 1, 1, 1])
  })

  it("masks the prompt tokens of prompt/completion records (targets -1)", () => {
    const c = corpus({ texts: ["Q?A", "R?B"], prompts: ["Q?", "R?"], completions: ["A", "B"] })
    const p = packCorpus(tok, c, "train", 7)
    // Stream: Q ? A <eos> R ? B <eos>; targets are the next token where it is counted.
    assert.deepStrictEqual(Array.from(p.targets), [-1, 65, 258, -1, -1, 66, 258])
    assert.deepStrictEqual(Array.from(targetBytes(tok, p.targets)), [0, 1, 0, 0, 0, 1, 0])
  })
})

describe("packScored", () => {
  // Three samples: prompt [1 2] + generated [3 4]; prompt [5] + [6 7 8 9 10] (longer than T + 1 = 5); an
  // empty generation. Scores with k = 2: position p's ids are [p, p + 100], log-probs [-p, -p - 1], tail -50 - p.
  const k = 2
  const tokens = Int32Array.of(3, 4, 6, 7, 8, 9, 10)
  const P = tokens.length
  const g: Generations = {
    _tag: "Generations",
    tokenizer: tok,
    generator: "m",
    source: "test",
    promptIds: ["a", "b", "c"],
    sample: Int32Array.of(0, 0, 0),
    seeds: Int32Array.of(1, 2, 3),
    prompts: ["", "", ""],
    texts: ["", "", ""],
    promptTokens: Int32Array.of(1, 2, 5, 11),
    promptOffsets: Int32Array.of(0, 2, 3, 4),
    tokens,
    offsets: Int32Array.of(0, 2, 7, 7),
    finishReasons: ["stop", "length", "stop"],
    meanLogProb: Float32Array.of(-1, -1, -1),
    settings: {},
    tokensPerSecond: 1,
    scores: {
      scorer: "t",
      k,
      indices: Int32Array.from({ length: P * k }, (_, i) => (i % 2 === 0 ? i / 2 : (i - 1) / 2 + 100)),
      logProbs: Float32Array.from({ length: P * k }, (_, i) => -Math.floor(i / 2) - (i % 2)),
      tailLogProb: Float32Array.from({ length: P }, (_, p) => -50 - p),
      tokenLogProb: new Float32Array(P)
    }
  }

  const expectedFill = Math.fround(Math.log((tok.vocabSize - k) / tok.vocabSize))

  it("makes one padded sequence per sample, counts the generated tokens only, and carries each one's score", () => {
    const { pack, scores, skipped, cutTokens } = packScored(g, 4)
    assert.strictEqual(packedRows(pack), 2)
    assert.strictEqual(skipped, 1)
    // Row 0: 1 2 3 4 then <pad>; row 1 keeps 1 prompt token and the first 4 generated ones.
    assert.deepStrictEqual(Array.from(pack.inputs), [1, 2, 3, 256, 5, 6, 7, 8])
    assert.deepStrictEqual(Array.from(pack.targets), [-1, 3, 4, -1, 6, 7, 8, 9])
    assert.strictEqual(cutTokens, 1)
    // Target (0, 1) is generated position 0; (1, 0) .. (1, 3) are positions 2 .. 5.
    assert.deepStrictEqual(Array.from(scores.indices.subarray(1 * k, 3 * k)), [0, 100, 1, 101])
    assert.deepStrictEqual(Array.from(scores.indices.subarray(4 * k, 8 * k)), [2, 102, 3, 103, 4, 104, 5, 105])
    assert.deepStrictEqual(Array.from(scores.logProbs.subarray(4 * k, 5 * k)), [-2, -3])
    assert.deepStrictEqual(Array.from(scores.tailLogProb), [expectedFill, -50, -51, expectedFill, -52, -53, -54, -55])
    // Uncounted positions hold the uniform filler over distinct ids.
    assert.deepStrictEqual(Array.from(scores.indices.subarray(0, k)), [0, 1])
    assert.closeTo(scores.logProbs[0]!, -Math.log(tok.vocabSize), 1e-6)
  })
})
