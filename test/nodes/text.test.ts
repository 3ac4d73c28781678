/**
 * `text -> tokenizer` through the executor: a Brown slice and a JSONL file feed BPE and byte-level
 * tokenizers; the second run is all cache hits, editing the file re-runs only what depends on it, and
 * the metrics (vocabulary size, training bytes, bytes per token) land in the results store. A
 * generated task (`source: task`) feeds a tiny `lm_train`, its prompts masked out of the loss.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer, Schema } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { TextParams } from "../../src/nodes/text.js"
import { packCorpus } from "../../src/tokenizer/Pack.js"
import { TokenizerParams, trainingTexts } from "../../src/nodes/tokenizer.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { decode, encode } from "../../src/tokenizer/Tokenizer.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent)
  )
)

const dir = mkdtempSync(join(tmpdir(), "distillery-text-node-"))
writeFileSync(join(dir, "qa.jsonl"), '{"prompt": "Q: 1+1? A: ", "completion": "2"}\n{"prompt": "Q: 2+2? A: ", "completion": "4"}\n')
const pipelineFile = join(dir, "lm-data.yaml")
writeFileSync(
  pipelineFile,
  `name: lm-data
seed: 3
nodes:
  - id: brown
    kind: text
    params: { source: brown, limit: 30 }
  - id: bpe
    kind: tokenizer
    inputs: { corpus: brown }
    params: { type: bpe, vocabSize: 400 }
  - id: bytes
    kind: tokenizer
    params: { type: bytes }
  - id: qa
    kind: text
    params: { source: jsonl, path: qa.jsonl, baseDir: ${JSON.stringify(dir)}, validation: 0, test: 0 }
  - id: qa_bpe
    kind: tokenizer
    inputs: { corpus: qa }
    params: { type: bpe, vocabSize: 280 }
`
)

const statuses = (r: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly status: string }> }) =>
  Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))

describe("text -> tokenizer pipeline", () => {
  it.live("runs, caches, re-runs what an edited file feeds, and records the metrics", () =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipelineFile(pipelineFile, builtinRegistry)
      const executor = yield* Executor
      const first = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(first), { brown: "executed", bpe: "executed", bytes: "executed", qa: "executed", qa_bpe: "executed" })

      const bpe = first.nodes.find((n) => n.id === "bpe")!.result!.outputs.tokenizer!
      assert.strictEqual(bpe._tag, "Tokenizer")
      if (bpe._tag === "Tokenizer") {
        assert.strictEqual(bpe.vocabSize, 400)
        assert.strictEqual(decode(bpe, encode(bpe, "Distillery's 1st tokenizer: ok ✓")), "Distillery's 1st tokenizer: ok ✓")
      }
      const corpus = first.nodes.find((n) => n.id === "qa")!.result!.outputs.corpus!
      assert.strictEqual(corpus._tag === "TextCorpus" ? corpus.completions?.join("|") : "", "2|4")

      const store = yield* ResultsStore
      const metrics = yield* store.query(
        "SELECT node_id, name, value FROM metrics WHERE run_id = $1 AND node_id IN ('bpe', 'bytes', 'brown') ORDER BY node_id, name",
        [first.runId]
      )
      const value = (node: string, name: string) => Number(metrics.rows.find((r) => r[0] === node && r[1] === name)?.[2])
      assert.strictEqual(value("bpe", "vocab_size"), 400)
      assert.strictEqual(value("bpe", "train_bytes"), value("brown", "train_chars")) // Brown is ASCII
      assert.isAbove(value("bpe", "bytes_per_token"), 1.5)
      assert.strictEqual(value("brown", "documents"), 30)
      assert.strictEqual(value("bytes", "vocab_size"), 259)

      const second = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(second), { brown: "cached", bpe: "cached", bytes: "cached", qa: "cached", qa_bpe: "cached" })

      writeFileSync(join(dir, "qa.jsonl"), '{"prompt": "Q: 3+3? A: ", "completion": "6"}\n')
      const third = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(third), { brown: "cached", bpe: "cached", bytes: "cached", qa: "executed", qa_bpe: "executed" })
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("BPE without a corpus fails with a message that says what to wire", () =>
    Effect.gen(function* () {
      const file = join(dir, "no-corpus.yaml")
      writeFileSync(file, "name: no-corpus\nnodes:\n  - id: bpe\n    kind: tokenizer\n    params: { type: bpe, vocabSize: 300 }\n")
      const pipeline = yield* loadPipelineFile(file, builtinRegistry)
      const error = yield* Effect.flip((yield* Executor).run(pipeline))
      assert.match(error.message, /node 'bpe': type: bpe trains on a corpus: wire a text node to the corpus input/)
    }).pipe(Effect.provide(TestLayer))
  )

  it("maxTrainChars takes train documents in a seeded order up to the limit", () => {
    const texts = Array.from({ length: 20 }, (_, i) => `document ${i} `.repeat(10))
    const corpus = {
      _tag: "TextCorpus" as const,
      name: "t",
      ids: texts.map((_, i) => String(i)),
      texts,
      splits: { train: Int32Array.from({ length: 16 }, (_, i) => i), validation: Int32Array.of(16, 17), test: Int32Array.of(18, 19) }
    }
    assert.strictEqual(trainingTexts(corpus, undefined, 1).length, 16)
    const a = trainingTexts(corpus, 300, 1)
    assert.deepStrictEqual(trainingTexts(corpus, 300, 1), a)
    assert.strictEqual(a.length, 3) // 110 to 120 characters each: stops once 300 are reached
    assert.isTrue(a.every((t) => texts.indexOf(t) < 16))
    assert.notDeepEqual(trainingTexts(corpus, 300, 2), a)
  })

  it("params are checked before anything runs", () => {
    const tokenizer = Schema.decodeUnknownEither(TokenizerParams)
    assert.isTrue(Either.isRight(tokenizer({ type: "bpe", vocabSize: 259 })))
    const small = tokenizer({ type: "bpe", vocabSize: 258 })
    assert.isTrue(Either.isLeft(small) && /at least 259, got 258/.test(String(small.left)))
    assert.isTrue(Either.isLeft(tokenizer({ type: "bpe", vocabSize: 300, special: ["<s>", "<s>"] })))
    const text = Schema.decodeUnknownEither(TextParams)
    const decoded = text({ source: "brown" })
    assert.isTrue(Either.isRight(decoded) && decoded.right.validation === 0.1 && decoded.right.onLong === "fail")
    assert.isTrue(Either.isLeft(text({ source: "brown", validation: 0.5, test: 0.5 })))
    assert.isTrue(Either.isLeft(text({ source: "files", paths: [] })))
  })

  it.live("a generated task is a prompt/completion corpus that trains a tiny LM with its prompts masked", () =>
    Effect.gen(function* () {
      const file = join(dir, "task-lm.yaml")
      writeFileSync(
        file,
        `name: task-lm
seed: 5
nodes:
  - { id: sums, kind: text, params: { source: task, task: arithmetic, examples: 40, steps: 2, digits: 2, validation: 0.1, test: 0.1 } }
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - id: lm
    kind: lm_train
    inputs: { corpus: sums, tokenizer: bytes }
    params: { model: { type: transformer, layers: 1, width: 16, heads: 2, context: 64 }, batchSize: 4, steps: 5 }
`
      )
      const pipeline = yield* loadPipelineFile(file, builtinRegistry)
      const executor = yield* Executor
      const first = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(first), { sums: "executed", bytes: "executed", lm: "executed" })
      const corpus = first.nodes.find((n) => n.id === "sums")!.result!.outputs.corpus!
      const tokenizer = first.nodes.find((n) => n.id === "bytes")!.result!.outputs.tokenizer!
      assert.strictEqual(corpus._tag, "TextCorpus")
      if (corpus._tag === "TextCorpus" && tokenizer._tag === "Tokenizer") {
        assert.strictEqual(corpus.name, "arithmetic")
        assert.strictEqual(corpus.ids[12], "arithmetic-000012")
        assert.deepStrictEqual([corpus.splits.train.length, corpus.splits.validation.length, corpus.splits.test.length], [32, 4, 4])
        assert.isTrue(corpus.prompts!.every((p) => p.endsWith("\nAnswer:")))
        assert.isTrue(corpus.completions!.every((c, i) => c === ` ${corpus.rationales![i]} The answer is ${corpus.answers![i]}.`))
        assert.strictEqual(corpus.metadata![0]!.steps, 2)
        // The prompt bytes are not targets: masked with -1, while completion bytes are counted.
        const packed = packCorpus(tokenizer, corpus, "train", 64)
        assert.isTrue(packed.targets.some((t) => t === -1))
        assert.isTrue(packed.targets.some((t) => t >= 0))
      }
      const lm = first.nodes.find((n) => n.id === "lm")!.result!.outputs.model!
      assert.strictEqual(lm._tag, "LanguageModel")

      const steps = yield* (yield* ResultsStore).query("SELECT value FROM metrics WHERE run_id = $1 AND node_id = 'lm' AND name = 'steps'", [first.runId])
      assert.strictEqual(Number(steps.rows[0]![0]), 5)
      const second = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(second), { sums: "cached", bytes: "cached", lm: "cached" })
    }).pipe(Effect.provide(TestLayer))
  )
})
