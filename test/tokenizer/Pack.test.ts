import { assert, describe, it } from "@effect/vitest"
import type { TextCorpus } from "../../src/domain/Artifact.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { packCorpus, packedRows, targetBytes } from "../../src/tokenizer/Pack.js"

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
