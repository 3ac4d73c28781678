import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { ControlledEvaluateInputItem, Llama, Token } from "node-llama-cpp"
import { initBackend } from "../../src/backend/Backend.js"
import { makeRng } from "../../src/domain/Random.js"
import { byteToUnicode, readGguf, TensorType, writeGguf } from "../../src/formats/Gguf.js"
import { transformerFromWeights } from "../../src/models/Transformer.js"
import { decodeTransformerSpec, type TransformerSpec } from "../../src/models/TransformerSpec.js"
import { trainBpe } from "../../src/tokenizer/Bpe.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { requirement } from "../fixtures/requirements.js"
import { fanInWeights, ownLogProbs } from "../fixtures/transformer.js"

const tokenizer = bytesTokenizer() // 256 bytes + <pad> <bos> <eos>
const specOf = (tiedHead: boolean): TransformerSpec =>
  decodeTransformerSpec({ type: "transformer", vocabSize: tokenizer.vocabSize, layers: 2, width: 64, heads: 4, kvHeads: 2, context: 64, tiedHead })


const T = 48
const sequence: ReadonlyArray<number> = (() => {
  const rng = makeRng(11)
  return [tokenizer.special["<bos>"]!, ...Array.from({ length: T - 1 }, () => rng.int(256))]
})()

/** llama.cpp through node-llama-cpp's prebuilt CPU binary; building from source is never attempted. */
const llama = await import("node-llama-cpp")
  .then((m) => m.getLlama({ gpu: false, build: "never", logLevel: m.LlamaLogLevel.error }))
  .then((l): { ok: true; llama: Llama } => ({ ok: true, llama: l }))
  .catch((e: unknown) => ({ ok: false as const, reason: String(e) }))

const dir = mkdtempSync(join(tmpdir(), "distillery-gguf-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

beforeAll(async () => {
  await initBackend("cpu")
})

describe("GGUF", () => {
  it("writes the header, metadata and tensor infos a reader gets back", async () => {
    const spec = specOf(false)
    const file = join(dir, "meta.gguf")
    const weights = fanInWeights(spec, 1)
    await writeGguf({ spec, weights }, tokenizer, { file, name: "tiny" })
    const bytes = readFileSync(file)
    // A live model writes the same bytes as its spec and weights.
    const model = transformerFromWeights(spec, weights)
    await writeGguf(model, tokenizer, { file: join(dir, "live.gguf"), name: "tiny" })
    model.dispose()
    assert.isTrue(bytes.equals(readFileSync(join(dir, "live.gguf"))))
    const h = readGguf(bytes)
    const value = (key: string) => h.metadata.get(key)?.value
    assert.strictEqual(h.version, 3)
    assert.strictEqual(value("general.architecture"), "llama")
    assert.strictEqual(value("general.name"), "tiny")
    assert.strictEqual(value("general.alignment"), 32)
    assert.strictEqual(value("llama.block_count"), 2)
    assert.strictEqual(value("llama.embedding_length"), 64)
    assert.strictEqual(value("llama.feed_forward_length"), 176)
    assert.strictEqual(value("llama.attention.head_count"), 4)
    assert.strictEqual(value("llama.attention.head_count_kv"), 2)
    assert.strictEqual(value("llama.rope.dimension_count"), 16)
    assert.strictEqual(value("llama.context_length"), 64)
    assert.strictEqual(value("llama.rope.freq_base"), 10000)
    assert.approximately(value("llama.attention.layer_norm_rms_epsilon") as number, 1e-5, 1e-12)
    assert.strictEqual(value("tokenizer.ggml.model"), "gpt2")
    const tokens = value("tokenizer.ggml.tokens") as Array<string>
    assert.strictEqual(tokens.length, 259)
    assert.strictEqual(tokens[65], "A")
    assert.strictEqual(tokens[32], "Ġ") // space, in GPT-2's byte-to-unicode form
    assert.strictEqual(tokens[10], "Ċ")
    assert.strictEqual(new Set(byteToUnicode).size, 256)
    assert.deepStrictEqual(tokens.slice(256), ["<pad>", "<bos>", "<eos>"])
    assert.deepStrictEqual((value("tokenizer.ggml.token_type") as Array<number>).slice(254), [1, 1, 3, 3, 3])
    assert.deepStrictEqual(value("tokenizer.ggml.merges"), [])
    assert.strictEqual(value("tokenizer.ggml.bos_token_id"), 257)
    assert.strictEqual(value("tokenizer.ggml.eos_token_id"), 258)
    assert.strictEqual(value("tokenizer.ggml.padding_token_id"), 256)
    assert.strictEqual(h.tensors.length, 1 + 2 * 9 + 2)
    const byName = new Map(h.tensors.map((t) => [t.name, t]))
    assert.deepStrictEqual(byName.get("token_embd.weight")!.ne, [64, 259])
    assert.deepStrictEqual(byName.get("blk.1.attn_k.weight")!.ne, [64, 32])
    assert.deepStrictEqual(byName.get("blk.0.ffn_down.weight")!.ne, [176, 64])
    assert.deepStrictEqual(byName.get("output.weight")!.ne, [64, 259])
    assert.isTrue(h.tensors.every((t) => t.offset % 32 === 0 && t.type === TensorType.F32))
    assert.strictEqual(h.dataOffset % 32, 0)
    const last = h.tensors[h.tensors.length - 1]!
    assert.strictEqual(bytes.length, h.dataOffset + last.offset + Math.ceil((last.ne[0]! * last.ne[1]! * 4) / 32) * 32)
  })

  it("writes BPE merges as 'left right' in byte-to-unicode form; F16 keeps the norms F32", async () => {
    // Chunks "a", " b", " a", " b", " a", " b": the merges are (" ", "b") three times, then (" ", "a") twice.
    const bpe = trainBpe(["a b a b a b"], { vocabSize: 256 + 2 + 3 })
    const spec = decodeTransformerSpec({ type: "transformer", vocabSize: bpe.vocabSize, layers: 1, width: 16, heads: 2, context: 8 })
    const file = join(dir, "bpe.gguf")
    await writeGguf({ spec, weights: fanInWeights(spec, 2) }, bpe, { file, type: "f16" })
    const h = readGguf(readFileSync(file))
    const merges = h.metadata.get("tokenizer.ggml.merges")!.value as Array<string>
    const tokens = h.metadata.get("tokenizer.ggml.tokens")!.value as Array<string>
    assert.deepStrictEqual(merges, ["Ġ b", "Ġ a"])
    assert.deepStrictEqual(tokens.slice(256), ["Ġb", "Ġa", "<pad>", "<bos>", "<eos>"])
    assert.strictEqual(h.metadata.get("tokenizer.ggml.pre")!.value, "gpt-2")
    for (const t of h.tensors) assert.strictEqual(t.type, t.ne.length === 1 ? TensorType.F32 : TensorType.F16, t.name)
  })

  describe.runIf(requirement("node-llama-cpp (prebuilt CPU binary)", llama))("llama.cpp reads it with the same outputs", () => {
    /** llama.cpp's (T, V) next-token log-probs for the sequence, F32 KV cache, no flash attention. */
    const llamaLogProbs = async (file: string): Promise<Float32Array> => {
      const l = (llama as { llama: Llama }).llama
      const model = await l.loadModel({ modelPath: file })
      const context = await model.createContext({
        contextSize: 64,
        batchSize: 64,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32"
      })
      const V = tokenizer.vocabSize
      try {
        const results = await context.getSequence().controlledEvaluate(
          sequence.map((t): ControlledEvaluateInputItem => [t as Token, { generateNext: { probabilities: true } }])
        )
        const out = new Float32Array(T * V)
        results.forEach((r, t) => {
          const probs = r?.next.probabilities
          assert.isDefined(probs, `no probabilities at position ${t}`)
          assert.strictEqual(probs!.size, V, `position ${t} has probabilities for ${probs!.size} of ${V} tokens`)
          for (const [token, p] of probs!) out[t * V + token] = Math.log(p)
        })
        return out
      } finally {
        await context.dispose()
        await model.dispose()
      }
    }

    const compare = async (tiedHead: boolean, type: "f32" | "f16") => {
      const spec = specOf(tiedHead)
      const weights = fanInWeights(spec, tiedHead ? 3 : 4)
      const file = join(dir, `tiny-${tiedHead ? "tied" : "untied"}-${type}.gguf`)
      await writeGguf({ spec, weights }, tokenizer, { file, type })
      const ours = ownLogProbs(spec, weights, sequence)
      const theirs = await llamaLogProbs(file)
      let maxDiff = 0
      let spread = 0
      for (let i = 0; i < ours.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - theirs[i]!))
        spread = Math.max(spread, Math.abs(ours[i]! - ours[i % tokenizer.vocabSize]!))
      }
      console.log(`GGUF ${type} ${tiedHead ? "tied" : "untied"} head: max |Δ log-prob| over ${T} positions = ${maxDiff.toExponential(2)}`)
      // The model is far from uniform and its outputs depend on the position, so agreement means something.
      assert.isAbove(spread, 1)
      return maxDiff
    }

    it("F32, tied head: every position's log-probs agree to 1e-4", async () => {
      assert.isAtMost(await compare(true, "f32"), 1e-4)
    })
    it("F32, untied head: every position's log-probs agree to 1e-4", async () => {
      assert.isAtMost(await compare(false, "f32"), 1e-4)
    })
    it("F16 weights: every position's log-probs agree to 1e-2 (weights rounded to half precision)", async () => {
      assert.isAtMost(await compare(false, "f16"), 1e-2)
    })
  })
})
