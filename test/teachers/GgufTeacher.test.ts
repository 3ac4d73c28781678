/**
 * GgufTeacher against Distillery itself: a tiny transformer written as GGUF scores every position with
 * the log-softmax Distillery computes (F32 KV cache: to 1e-4), samples what DistilleryTeacher samples
 * from the same seeds, and reproduces a row from its seed alone. Also: the vocabulary read back from the
 * file's metadata, and the sha256 index that spares re-hashing an unchanged file.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import type { LanguageModel } from "../../src/domain/Artifact.js"
import { makeRng } from "../../src/domain/Random.js"
import { writeGguf } from "../../src/formats/Gguf.js"
import { transformerWeightSpecs } from "../../src/models/Transformer.js"
import type { TransformerSpec } from "../../src/models/TransformerSpec.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { sameTokenizer } from "../../src/nodes/lm/common.js"
import { describeGguf, hashesComputed, indexedSha256, readGgufHeader, tokenizerOfGguf } from "../../src/nodes/lm/gguf.js"
import * as DistilleryTeacher from "../../src/teachers/DistilleryTeacher.js"
import * as GgufTeacher from "../../src/teachers/GgufTeacher.js"
import type { SampleOutcome, SampleSettings, TeacherSample } from "../../src/teachers/Teacher.js"
import { trainBpe } from "../../src/tokenizer/Bpe.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { requirement } from "../fixtures/requirements.js"
import { fanInWeights, ownLogProbs } from "../fixtures/transformer.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-gguf-teacher-"))
process.env["DISTILLERY_HASH_INDEX"] = join(dir, "file-hashes.json")
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const tokenizer = bytesTokenizer()
const V = tokenizer.vocabSize
const spec: TransformerSpec = decodeTransformerSpec({ type: "transformer", vocabSize: V, layers: 2, width: 32, heads: 4, kvHeads: 2, context: 32 })


const weights = fanInWeights(spec, 5)
const lm: LanguageModel = { _tag: "LanguageModel", spec, tokenizer, weights, info: {} }
const file = join(dir, "tiny.gguf")

const probe = await GgufTeacher.loadLlama().then(() => ({ ok: true }), (e: unknown) => ({ ok: false, reason: String(e) }))

beforeAll(async () => {
  await initBackend("cpu")
  await writeGguf({ spec, weights }, tokenizer, { file })
})

const settings = (o: Partial<SampleSettings>): SampleSettings => ({ temperature: 1, topK: 0, topP: 1, minP: 0, maxNewTokens: 12, stop: [], topLogprobs: 0, batchSize: 4, ...o })
const bos = tokenizer.special["<bos>"]!
const prompt = (id: string, seed: number, text = "The jury") => ({ id, text, tokens: Int32Array.from([bos, ...new TextEncoder().encode(text)]), seed })

describe("the file's description", () => {
  it("reads a byte-level and a BPE vocabulary back as the tokenizer written", async () => {
    const described = describeGguf(file, { kvCache: "f32" })
    assert.isTrue(sameTokenizer(described.tokenizer!, tokenizer))
    assert.strictEqual(described.vocabSize, V)
    assert.strictEqual(described.trainContext, 32)
    assert.strictEqual(described.contextSize, 32)
    assert.strictEqual(described.eos, tokenizer.special["<eos>"])
    const bpe = trainBpe(["the cat sat on the mat; the cat ate the rat"], { vocabSize: 256 + 12 + 3 })
    const bpeSpec = decodeTransformerSpec({ type: "transformer", vocabSize: bpe.vocabSize, layers: 1, width: 16, heads: 2, context: 8 })
    const bpeFile = join(dir, "bpe.gguf")
    await writeGguf({ spec: bpeSpec, weights: transformerWeightSpecs(bpeSpec).map((w) => ({ name: w.name, shape: w.shape, values: new Float32Array(w.shape.reduce((a, b) => a * b, 1)) })) }, bpe, { file: bpeFile })
    const read = tokenizerOfGguf(readGgufHeader(bpeFile))
    assert.isTrue("tokenizer" in read && sameTokenizer(read.tokenizer, bpe))
  })

  it("keeps a file's sha256 in the index: an unchanged file is not hashed again, a touched one is", () => {
    const other = join(dir, "hashed.bin")
    writeFileSync(other, "some bytes")
    const before = hashesComputed()
    const first = indexedSha256(other)
    assert.strictEqual(first.sha256, createHash("sha256").update("some bytes").digest("hex"))
    assert.strictEqual(indexedSha256(other).sha256, first.sha256)
    assert.strictEqual(hashesComputed(), before + 1)
    utimesSync(other, new Date(), new Date(Date.now() + 5000))
    assert.strictEqual(indexedSha256(other).sha256, first.sha256)
    assert.strictEqual(hashesComputed(), before + 2)
  })
})

describe.runIf(requirement("node-llama-cpp (prebuilt CPU binary)", probe))("GgufTeacher", () => {
  const teacher = () => GgufTeacher.make(describeGguf(file, { kvCache: "f32" }), "tiny.gguf")

  it.effect("scores every position with Distillery's own log-softmax (max |Δ| <= 1e-4, F32 KV cache)", () =>
    Effect.gen(function* () {
      const rng = makeRng(3)
      const sequences = [5, 12, 20].map((n) => ({ prompt: Int32Array.of(bos, rng.int(256)), tokens: Int32Array.from({ length: n }, () => rng.int(256)) }))
      const scores = yield* teacher().score(sequences, V, 1)
      let maxDiff = 0
      let at = 0
      for (const { prompt, tokens } of sequences) {
        const all = [...prompt, ...tokens]
        const lp = ownLogProbs(spec, weights, all) // (T, V)
        for (let j = 0; j < tokens.length; j++, at++) {
          const row = prompt.length - 1 + j
          for (let r = 0; r < V; r++) maxDiff = Math.max(maxDiff, Math.abs(scores.logProbs[at * V + r]! - lp[row * V + scores.indices![at * V + r]!]!))
          maxDiff = Math.max(maxDiff, Math.abs(scores.tokenLogProb[at]! - lp[row * V + tokens[j]!]!))
        }
      }
      console.log(`GgufTeacher.score vs Distillery log-softmax over ${at} positions x ${V} tokens: max |Δ| = ${maxDiff.toExponential(2)}`)
      assert.strictEqual(at, 37)
      assert.isAtMost(maxDiff, 1e-4)
      // Top-k + tail agree with DistilleryTeacher's (generation/Score.ts).
      const ours = yield* teacher().score(sequences, 8, 1)
      const theirs = yield* DistilleryTeacher.make(lm).score(sequences, 8, 4)
      assert.deepStrictEqual(Array.from(ours.indices!), Array.from(theirs.indices!))
      // The tail's mass (not its log, which 1 - mass near 0 amplifies) to float32 rounding.
      for (let p = 0; p < at; p++) assert.approximately(Math.exp(ours.tailLogProb[p]!), Math.exp(theirs.tailLogProb[p]!), 1e-5)
    }), 60_000)

  it.effect("an F16 KV cache scores to 1e-2 of the F32 one", () =>
    Effect.gen(function* () {
      const sequences = [{ prompt: Int32Array.of(bos, 84, 104), tokens: Int32Array.from(new TextEncoder().encode("e jury said")) }]
      const f32 = yield* teacher().score(sequences, 4, 1)
      const f16 = yield* GgufTeacher.make(describeGguf(file, { kvCache: "f16" })).score(sequences, 4, 1)
      for (let p = 0; p < f32.tokenLogProb.length; p++) assert.approximately(f16.tokenLogProb[p]!, f32.tokenLogProb[p]!, 1e-2)
    }), 60_000)

  it.effect("samples from a row's seed alone: reproducible, another seed differs, the same tokens as DistilleryTeacher", () =>
    Effect.gen(function* () {
      const g = teacher()
      const rows = [prompt("a", 1), prompt("b", 2), prompt("c", 1, "It was")]
      const tokensOf = (outcomes: ReadonlyArray<SampleOutcome>) => outcomes.map((o) => Array.from((o as { sample: TeacherSample }).sample.tokens!))
      const first = yield* g.sample(rows, settings({ temperature: 2, topLogprobs: 4 }))
      const again = yield* g.sample(rows, settings({ temperature: 2, topLogprobs: 4 }))
      assert.deepStrictEqual(tokensOf(first), tokensOf(again))
      assert.notDeepEqual(tokensOf(first)[0], tokensOf(first)[1])
      const distillery = yield* DistilleryTeacher.make(lm).sample(rows, settings({ temperature: 2 }))
      assert.deepStrictEqual(tokensOf(first), tokensOf(distillery))
      const s = (first[0] as { sample: TeacherSample }).sample
      assert.strictEqual(s.top!.k, 4)
      assert.strictEqual(s.top!.tokenLogProb.length, s.tokens!.length)
      for (let p = 0; p < s.tokens!.length; p++) assert.approximately(s.top!.tokenLogProb[p]!, s.tokenLogProbs![p]!, 1e-6)
      const greedy = yield* g.sample(rows, settings({ temperature: 0, topK: 5, topP: 0.9, minP: 0.05 }))
      const greedyDistillery = yield* DistilleryTeacher.make(lm).sample(rows, settings({ temperature: 0 }))
      assert.deepStrictEqual(tokensOf(greedy), tokensOf(greedyDistillery))
    }), 60_000)

  it.effect("ends a row at a stop string (kept in the text) or at the context", () =>
    Effect.gen(function* () {
      const g = teacher()
      const [free] = yield* g.sample([prompt("a", 7)], settings({ maxNewTokens: 40 }))
      const text = (free as { sample: TeacherSample }).sample.text
      assert.strictEqual((free as { sample: TeacherSample }).sample.finishReason, "context")
      const stop = text.slice(2, 4)
      const [stopped] = yield* g.sample([prompt("a", 7)], settings({ maxNewTokens: 40, stop: [stop] }))
      const s = (stopped as { sample: TeacherSample }).sample
      assert.strictEqual(s.finishReason, "stop")
      assert.include(s.text, stop)
      assert.deepStrictEqual(Array.from(s.tokens!), Array.from((free as { sample: TeacherSample }).sample.tokens!.slice(0, s.tokens!.length)))
    }), 60_000)
})
