/**
 * `distillery export-model` as a user runs it: a tiny language model trained by `distillery run` into a
 * temporary store, written as GGUF, loaded by llama.cpp (node-llama-cpp), which must give the same
 * next-token log-probs as Distillery at every position; and each way the verb refuses, with its message.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import type { ControlledEvaluateInputItem, Llama, Token } from "node-llama-cpp"
import { initBackend } from "../../src/backend/Backend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { loadLanguageModel } from "../../src/cli/exportModel.js"
import { readGguf, TensorType } from "../../src/formats/Gguf.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { encode } from "../../src/tokenizer/Tokenizer.js"
import { cli, cliEntry } from "../fixtures/cli.js"
import { requirement } from "../fixtures/requirements.js"
import { ownLogProbs } from "../fixtures/transformer.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-export-model-"))
const store = join(dir, "store")
const pipeline = join(dir, "lm.yaml")
afterAll(() => rmSync(dir, { recursive: true, force: true }))

writeFileSync(pipeline, `name: lm-export
seed: 1
nodes:
  - { id: brown, kind: text, params: { source: brown, limit: 8 } }
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - id: lm
    kind: lm_train
    inputs: { corpus: brown, tokenizer: bytes }
    params:
      model: { type: transformer, layers: 2, width: 32, heads: 4, kvHeads: 2, context: 32 }
      sequenceLength: 32
      batchSize: 4
      steps: 6
      optimizer: { type: adamw, learningRate: 0.01 }
`)

/** llama.cpp through node-llama-cpp's prebuilt CPU binary; building from source is never attempted. */
const llama = await import("node-llama-cpp")
  .then((m) => m.getLlama({ gpu: false, build: "never", logLevel: m.LlamaLogLevel.error }))
  .then((l): { ok: true; llama: Llama } => ({ ok: true, llama: l }))
  .catch((e: unknown) => ({ ok: false as const, reason: String(e) }))

let runId = ""
beforeAll(async () => {
  await initBackend("cpu")
  const run = await cli("run", pipeline, "--store", store, "--backend", "cpu", "--workers", "0", "--run-id", "export-model-run")
  assert.strictEqual(run.code, 0, run.stderr)
  runId = "export-model-run"
})

/** The model the run stored, read as `export-model` reads it. */
const storedModel = () =>
  Effect.runPromise(
    loadLanguageModel(runId, "lm").pipe(
      Effect.provide(Layer.merge(ArtifactStore.layerFileSystem(store), ResultsStore.layer(join(store, "results.duckdb"), { readOnly: true })))
    )
  )


describe("distillery export-model", () => {
  it("writes <node>.gguf in the current directory by default, or --out; --f16 halves the matrices", async () => {
    const out = join(dir, "lm-f16.gguf")
    const f16 = await cli("export-model", runId, "lm", "--format", "gguf", "--f16", "--out", out, "--store", store)
    assert.strictEqual(f16.code, 0, f16.stderr)
    assert.include(f16.stdout, `wrote ${out}`)
    const header = readGguf(readFileSync(out))
    assert.strictEqual(header.metadata.get("general.name")?.value, "lm")
    assert.isTrue(header.tensors.some((t) => t.type === TensorType.F16))
    // No --out: <node>.gguf in the directory the command runs in.
    const cwd = join(dir, "cwd")
    mkdirSync(cwd)
    const local = await new Promise<{ code: number; stderr: string }>((done) =>
      execFile(process.execPath, [resolve(cliEntry), "export-model", "last", "lm", "--store", store], { cwd, env: { ...process.env, DISTILLERY_NO_REBUILD: "1" } }, (error, _stdout, stderr) =>
        done({ code: error === null ? 0 : Number(error.code ?? 1), stderr }))
    )
    assert.strictEqual(local.code, 0, local.stderr)
    assert.isTrue(existsSync(join(cwd, "lm.gguf")))
  })

  describe.runIf(requirement("node-llama-cpp (prebuilt CPU binary)", llama))("llama.cpp reads the export", () => {
    it("F32: llama.cpp's log-probs equal Distillery's at every position to 1e-4", async () => {
      const file = join(dir, "lm.gguf")
      const exported = await cli("export-model", runId, "lm", "--out", file, "--store", store)
      assert.strictEqual(exported.code, 0, exported.stderr)
      const lm = (await storedModel()).model
      const spec = decodeTransformerSpec(lm.spec)
      const V = spec.vocabSize
      // A whole context of tokens: every position the model has, the last included.
      const text = "The jury said it did find that the Fulton County Grand Jury said Friday an investigation of"
      const sequence = [lm.tokenizer.special["<eos>"]!, ...encode(lm.tokenizer, text)].slice(0, spec.context)
      const T = sequence.length
      assert.strictEqual(T, spec.context)
      const ours = ownLogProbs(decodeTransformerSpec(lm.spec), lm.weights, sequence)
      const l = (llama as { llama: Llama }).llama
      const model = await l.loadModel({ modelPath: file })
      const context = await model.createContext({
        // Twice the model's context: node-llama-cpp makes room in a context its tokens fill before it
        // evaluates the last one, which moves that position's log-probs by ~1e-3.
        contextSize: 2 * spec.context,
        batchSize: spec.context,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32"
      })
      const theirs = new Float32Array(T * V)
      try {
        const results = await context.getSequence().controlledEvaluate(
          sequence.map((t): ControlledEvaluateInputItem => [t as Token, { generateNext: { probabilities: true } }])
        )
        results.forEach((r, t) => {
          const probs = r?.next.probabilities
          assert.isDefined(probs, `no probabilities at position ${t}`)
          assert.strictEqual(probs!.size, V)
          for (const [token, p] of probs!) theirs[t * V + token] = Math.log(p)
        })
      } finally {
        await context.dispose()
        await model.dispose()
      }
      let maxDiff = 0
      for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - theirs[i]!))
      console.log(`export-model F32: max |Δ log-prob| over ${T} positions x ${V} tokens = ${maxDiff.toExponential(2)}`)
      assert.isAtMost(maxDiff, 1e-4)
    })
  })

  it("refuses an unknown run, naming the recent ones", async () => {
    const r = await cli("export-model", "no-such-run", "lm", "--store", store)
    assert.strictEqual(r.code, 4)
    assert.include(r.stderr, "no run or sweep 'no-such-run'; recent runs: export-model-run")
    assert.notInclude(r.stderr, "    at ")
  })

  it("refuses a node the run does not have, listing its nodes", async () => {
    const r = await cli("export-model", runId, "lmm", "--store", store)
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, "has no node 'lmm' (did you mean 'lm'?); its nodes are: 'brown', 'bytes' or 'lm'")
  })

  it("refuses a node whose result is not a language model, saying what it is", async () => {
    const r = await cli("export-model", runId, "bytes", "--store", store)
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, "node 'bytes' (tokenizer) produced Tokenizer (port 'tokenizer'), not a LanguageModel; the run's language models: 'lm'")
  })

  it("refuses an unknown format, listing the formats", async () => {
    const r = await cli("export-model", runId, "lm", "--format", "onnx", "--store", store)
    assert.strictEqual(r.code, 2)
    assert.include(r.stdout + r.stderr, "gguf")
  })

  // Last: it removes the model's key from the store the other tests read.
  it("says when the model is no longer in the cache, and how to recompute it", async () => {
    const keys = join(store, "keys")
    const key = readdirSync(keys).find((k) => (JSON.parse(readFileSync(join(keys, k), "utf8")) as { node: string }).node === "lm")!
    rmSync(join(keys, key))
    const r = await cli("export-model", runId, "lm", "--store", store)
    assert.strictEqual(r.code, 1)
    assert.include(r.stderr, "the result of node 'lm' (lm_train, key ")
    assert.include(r.stderr, "is not in the cache")
    assert.include(r.stderr, `recompute it with \`distillery run ${pipeline}\``)
  })
})
