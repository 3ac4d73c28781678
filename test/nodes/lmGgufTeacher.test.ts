/**
 * pipelines/gguf-teacher.yaml through the executor, its GGUF exported here from a tiny transformer:
 * text -> tokenizer -> gguf_teacher -> lm_generate (the GGUF's own scores) -> lm_filter -> lm_train
 * (KD from them) -> lm_evaluate; a second run is all cache hits and hashes nothing; a file rewritten
 * with other weights changes the teacher's cache key and re-runs what depends on it. A GGUF of another
 * vocabulary samples text only; a missing or non-GGUF file is a NodeError naming the path.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Layer } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor, pipelineCacheKeys } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { Generations, GgufTeacherFile, Tokenizer } from "../../src/domain/Artifact.js"
import { writeGguf } from "../../src/formats/Gguf.js"
import type { TransformerSpec } from "../../src/models/TransformerSpec.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { hashesComputed } from "../../src/nodes/lm/gguf.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { loadLlama } from "../../src/teachers/GgufTeacher.js"
import { trainBpe } from "../../src/tokenizer/Bpe.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { save as saveTokenizer } from "../../src/tokenizer/Tokenizer.js"
import { requirement } from "../fixtures/requirements.js"
import { wideTransformer } from "../fixtures/transformer.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-gguf-pipeline-"))
process.env["DISTILLERY_HASH_INDEX"] = join(dir, "file-hashes.json")
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A tiny transformer with visible weights written as GGUF at `file`. */
const exportTiny = (spec: TransformerSpec, tokenizer: Tokenizer, seed: number, file: string) =>
  Effect.promise(async () => {
    const net = wideTransformer(spec, seed)
    try {
      await writeGguf(net, tokenizer, { file })
    } finally {
      net.dispose()
    }
  })
const bytes = bytesTokenizer()
const spec = decodeTransformerSpec({ type: "transformer", vocabSize: bytes.vocabSize, layers: 1, width: 32, heads: 2, context: 64 })
const model = join(dir, "lm.gguf")

/** pipelines/gguf-teacher.yaml with its teacher pointed at `path`. */
const pipelineFile = (name: string, path: string) => {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, readFileSync("pipelines/gguf-teacher.yaml", "utf8").replace("path: lm.gguf", `path: ${JSON.stringify(path)}`))
  return file
}

const layer = Executor.layer.pipe(Layer.provideMerge(Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("wasm"), Reporter.layerSilent)))

const statuses = (r: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly status: string }> }) => Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))
const ids = ["brown", "bytes", "teacher", "samples", "sft", "student", "eval_student"]

const probe = await loadLlama().then(() => ({ ok: true }), (e: unknown) => ({ ok: false, reason: String(e) }))

beforeAll(async () => {
  await initBackend("cpu")
  await Effect.runPromise(exportTiny(spec, bytes, 1, model))
})

describe.runIf(requirement("node-llama-cpp (prebuilt CPU binary)", probe))("gguf_teacher in a pipeline", () => {
  it.effect("teaches a student from the GGUF's samples and scores; cached on a re-run; a rewritten file re-runs its dependants", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const file = pipelineFile("gguf", model)
      const pipeline = yield* loadPipelineFile(file, builtinRegistry)
      const first = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(first), Object.fromEntries(ids.map((id) => [id, "executed"])))
      const result = (id: string) => first.nodes.find((n) => n.id === id)!.result!
      const teacher = result("teacher").outputs.teacher as GgufTeacherFile
      assert.strictEqual(teacher.path, model)
      assert.strictEqual(teacher.kvCache, "f32")
      assert.match(teacher.sha256, /^[0-9a-f]{64}$/)
      const g = result("samples").outputs.generations as Generations
      assert.strictEqual(g.promptIds.length, 16)
      assert.strictEqual(g.scores!.scorer, "teacher")
      assert.strictEqual(g.scores!.k, 8)
      assert.strictEqual(g.scores!.tokenLogProb.length, g.tokens.length)
      // The sampler's own log-probs and the scores come from one distribution.
      let own = 0
      for (const x of g.scores!.tokenLogProb) own += x
      let mean = 0
      for (let r = 0; r < 16; r++) mean += g.meanLogProb[r]! * (g.offsets[r + 1]! - g.offsets[r]!)
      assert.approximately(own, mean, 1e-3)
      assert.include(JSON.stringify(result("samples").info), "the GGUF's own top-k + tail")
      assert.isAbove(result("eval_student").metrics.length, 0)

      const hashed = hashesComputed()
      const second = yield* executor.run(yield* loadPipelineFile(file, builtinRegistry))
      assert.deepStrictEqual(statuses(second), Object.fromEntries(ids.map((id) => [id, "cached"])))
      assert.strictEqual(hashesComputed(), hashed, "an unchanged file is not hashed again")

      const before = pipelineCacheKeys(pipeline).get("teacher")
      yield* exportTiny(spec, bytes, 2, model)
      const changed = yield* loadPipelineFile(file, builtinRegistry)
      assert.notStrictEqual(pipelineCacheKeys(changed).get("teacher"), before)
      assert.strictEqual(hashesComputed(), hashed + 1)
      const third = yield* executor.run(changed)
      assert.deepStrictEqual(statuses(third), { brown: "cached", bytes: "cached", teacher: "executed", samples: "executed", sft: "executed", student: "executed", eval_student: "executed" })
    }).pipe(Effect.provide(layer)), 120_000)

  it.effect("samples text only from a GGUF of another vocabulary, saying why there are no scores", () =>
    Effect.gen(function* () {
      const bpe = trainBpe(["the jury said that the city of atlanta had the election"], { vocabSize: 256 + 16 + 3, pattern: "gpt2" })
      const bpeSpec = decodeTransformerSpec({ type: "transformer", vocabSize: bpe.vocabSize, layers: 1, width: 32, heads: 2, context: 64 })
      const other = join(dir, "bpe.gguf")
      yield* exportTiny(bpeSpec, bpe, 3, other)
      const file = join(dir, "text-only.yaml")
      writeFileSync(file, `name: text-only
seed: 1
nodes:
  - { id: brown, kind: text, params: { source: brown, limit: 8 } }
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - { id: teacher, kind: gguf_teacher, params: { path: ${JSON.stringify(other)}, contextSize: 48 } }
  - { id: samples, kind: lm_generate, inputs: { model: teacher, tokenizer: bytes, corpus: brown }, params: { split: train, limit: 3, maxNewTokens: 8 } }
`)
      const run = yield* (yield* Executor).run(yield* loadPipelineFile(file, builtinRegistry))
      const samples = run.nodes.find((n) => n.id === "samples")!.result!
      const g = samples.outputs.generations as Generations
      assert.strictEqual(g.promptIds.length, 3)
      assert.isUndefined(g.scores)
      assert.isAbove(g.tokens.length, 0)
      assert.include(JSON.stringify(samples.info), "omitted: the GGUF's vocabulary is not the student's")
    }).pipe(Effect.provide(layer)), 60_000)

  it.effect("a student adopts the GGUF's vocabulary (tokenizer type gguf), and the GGUF's samples then carry its scores", () =>
    Effect.gen(function* () {
      const bpe = trainBpe(["the jury said that the city of atlanta had the election"], { vocabSize: 256 + 16 + 3, pattern: "gpt2" })
      const bpeSpec = decodeTransformerSpec({ type: "transformer", vocabSize: bpe.vocabSize, layers: 1, width: 32, heads: 2, context: 64 })
      const other = join(dir, "adopted.gguf")
      yield* exportTiny(bpeSpec, bpe, 4, other)
      const file = join(dir, "adopt.yaml")
      writeFileSync(file, `name: adopt
seed: 1
nodes:
  - { id: brown, kind: text, params: { source: brown, limit: 8 } }
  - { id: vocab, kind: tokenizer, params: { type: gguf, path: ${JSON.stringify(other)} } }
  - { id: teacher, kind: gguf_teacher, params: { path: ${JSON.stringify(other)}, contextSize: 48 } }
  - { id: samples, kind: lm_generate, inputs: { model: teacher, tokenizer: vocab, corpus: brown }, params: { split: train, limit: 3, maxNewTokens: 8, scoreTopK: 4 } }
`)
      const run = yield* (yield* Executor).run(yield* loadPipelineFile(file, builtinRegistry))
      const adopted = run.nodes.find((n) => n.id === "vocab")!.result!.outputs.tokenizer as Tokenizer
      assert.strictEqual(saveTokenizer(adopted), saveTokenizer(bpe))
      const g = run.nodes.find((n) => n.id === "samples")!.result!.outputs.generations as Generations
      assert.strictEqual(g.scores?.k, 4)
      assert.strictEqual(g.scores?.tokenLogProb.length, g.tokens.length)

      // A vocabulary Distillery cannot read is refused, naming the file and what to do instead.
      const notes = join(dir, "vocab-notes.gguf")
      writeFileSync(notes, "not a model at all")
      const bad = join(dir, "bad-vocab.yaml")
      writeFileSync(bad, `name: bad-vocab
nodes:
  - { id: vocab, kind: tokenizer, params: { type: gguf, path: ${JSON.stringify(notes)} } }
`)
      const exit = yield* Effect.exit((yield* Executor).run(yield* loadPipelineFile(bad, builtinRegistry)))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause), `param 'path': cannot read ${notes} as GGUF`)
    }).pipe(Effect.provide(layer)), 60_000)
})

describe("gguf_teacher's refusals", () => {
  const failure = (path: string) =>
    Effect.gen(function* () {
      const file = join(dir, "refusal.yaml")
      writeFileSync(file, `name: refusal
nodes:
  - { id: teacher, kind: gguf_teacher, params: { path: ${JSON.stringify(path)} } }
`)
      const exit = yield* Effect.exit((yield* Executor).run(yield* loadPipelineFile(file, builtinRegistry)))
      assert.isTrue(Exit.isFailure(exit))
      return Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)
    }).pipe(Effect.provide(layer))

  it.effect("a missing file and a file that is not GGUF are NodeErrors naming the path", () =>
    Effect.gen(function* () {
      const missing = join(dir, "nowhere.gguf")
      assert.include(yield* failure(missing), `node 'teacher'`)
      assert.include(yield* failure(missing), `param 'path': ${missing}: no such file`)
      const text = join(dir, "notes.gguf")
      writeFileSync(text, "not a model at all")
      assert.include(yield* failure(text), `param 'path': ${text}: not a GGUF file (the file does not start with the magic 'GGUF')`)
    }))
})
