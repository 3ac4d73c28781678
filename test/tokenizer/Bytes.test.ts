/**
 * The byte-level tokenizer: the 256 bytes then the special tokens; encode then decode is the identity
 * on random UTF-8 text; text never produces a special token.
 */
import { assert, describe, it } from "@effect/vitest"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { decode, encode, specialId } from "../../src/tokenizer/Tokenizer.js"
import { randomStrings, roundTrips } from "../fixtures/randomText.js"

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
