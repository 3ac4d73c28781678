/**
 * `lm_filter` through the executor: hand-made samples (byte tokens) are filtered by every rule, each
 * decision lands in the examples view with the first rule that dropped the row, the kept samples become
 * a prompt/completion corpus with the real corpus's held-out splits, and `lm_train` fine-tunes on it
 * (completion tokens only) and validates on the real text. An empty result, scorer rules without
 * scores and mix without a corpus are refused naming the node. pipelines/lm-seqkd-tiny.yaml runs the
 * whole chain: lm_generate (scored by the teacher) -> lm_filter -> lm_train -> lm_evaluate.
 */
import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Either, Layer, Schema } from "effect"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import type { TextCorpus } from "../../src/domain/Artifact.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { LmFilterKind, sftCorpus } from "../../src/nodes/lm/filter.js"
import { LmTrainKind } from "../../src/nodes/lm/train.js"
import { defineKind } from "../../src/nodes/NodeKind.js"
import { TextKind } from "../../src/nodes/text.js"
import { TokenizerKind } from "../../src/nodes/tokenizer.js"
import { pipeline } from "../../src/pipeline/Builder.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { tokenStream } from "../../src/tokenizer/Pack.js"
import type { SampleRow } from "../fixtures/generations.js"
import { makeGenerations } from "../fixtures/generations.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("wasm"), Reporter.layerSilent))
)

/** Samples written out in the params (so they are part of the cache key), as a Generations artifact. */
const HandSamples = defineKind({
  kind: "hand_samples",
  version: 1,
  description: "samples given in the params",
  params: Schema.Struct({
    rows: Schema.Array(
      Schema.Struct({
        promptId: Schema.String,
        sample: Schema.optional(Schema.Int),
        prompt: Schema.optional(Schema.String),
        text: Schema.String,
        finish: Schema.optional(Schema.Literal("stop", "length", "context")),
        meanLogProb: Schema.optional(Schema.Number)
      })
    )
  }),
  inputs: {},
  outputs: { samples: "Generations" },
  run: (ctx) => Effect.sync(() => ({ samples: makeGenerations(ctx.params.rows) }))
})

const cat = "The cat sat on the mat and looked at the door."
const rows: ReadonlyArray<SampleRow> = [
  { promptId: "p0", sample: 0, prompt: "Story 0:", text: cat, meanLogProb: -0.8 },
  { promptId: "p0", sample: 1, prompt: "Story 0:", text: cat.replace(".", "!"), meanLogProb: -0.9 },
  { promptId: "p1", sample: 0, prompt: "Story 1:", text: `  ${cat} `, meanLogProb: -0.7 },
  { promptId: "p1", sample: 1, prompt: "Story 1:", text: "Rain fell over the quiet harbour all night long", finish: "length" },
  { promptId: "p2", sample: 0, prompt: "Story 2:", text: "Ok." },
  { promptId: "p2", sample: 1, prompt: "Story 2:", text: "A farmer walked his two dogs along the river every morning.", meanLogProb: -4 },
  { promptId: "p3", sample: 0, prompt: "Story 3:", text: "Children played in the park until the lamps came on.", meanLogProb: -1.1 },
  { promptId: "p3", sample: 1, prompt: "Story 3:", text: "The old clock in the hall struck twelve, and nobody moved.", meanLogProb: -1.2 },
  { promptId: "p4", sample: 0, prompt: "Story 4:", text: "She wrote a letter to her brother about the new house.", meanLogProb: -1.3 },
  { promptId: "p4", sample: 1, prompt: "Story 4:", text: "la ".repeat(30), meanLogProb: -0.1 }
]

const rules = {
  finishReasons: ["stop"] as const,
  minTokens: 8,
  maxTokens: 80,
  minMeanLogProb: -2.5,
  dedupe: "exact" as const,
  nearDuplicate: { threshold: 0.8, n: 5 }
}

const tinyLm = { model: { type: "transformer" as const, layers: 1, width: 16, heads: 2, context: 32 }, batchSize: 4, steps: 10 }

const build = (options: { readonly filter: typeof LmFilterKind.params.Encoded; readonly samples?: ReadonlyArray<SampleRow>; readonly corpus?: boolean; readonly train?: boolean }) => {
  const p = pipeline({ name: "lm-filter", seed: 4 })
  const samples = p.add("samples", HandSamples, { params: { rows: options.samples ?? rows } })
  const brown = p.add("brown", TextKind, { params: { source: "brown", limit: 10 } })
  const bytes = p.add("bytes", TokenizerKind, { params: { type: "bytes" } })
  const sft = p.add("sft", LmFilterKind, {
    params: options.filter,
    inputs: { samples: samples.samples, ...(options.corpus !== false ? { corpus: brown.corpus } : {}) }
  })
  if (options.train !== false) p.add("student", LmTrainKind, { params: tinyLm, inputs: { corpus: sft.corpus, tokenizer: bytes.tokenizer } })
  return Either.getOrThrow(p.build(builtinRegistry))
}

const statuses = (r: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly status: string }> }) =>
  Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))

describe("lm_filter", () => {
  it.live("filters samples by every rule, records each decision, and lm_train fine-tunes on the kept ones", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const store = yield* ResultsStore
      const tensors = tf.memory().numTensors
      const first = yield* executor.run(build({ filter: rules }))
      assert.deepStrictEqual(statuses(first), { samples: "executed", brown: "executed", bytes: "executed", sft: "executed", student: "executed" })
      assert.strictEqual(tf.memory().numTensors, tensors)

      const examples = yield* store.query(
        "SELECT example_id, split, decision, reason FROM examples WHERE run_id = $1 AND node_id = 'sft' ORDER BY example_id",
        [first.runId]
      )
      assert.deepStrictEqual(
        examples.rows.map((r) => [Number(r[0]), r[1], r[2], String(r[3]).split(":")[0]]),
        [
          [0, "train", "keep", "kept"],
          [1, "train", "drop", "near_duplicate"],
          [2, "train", "drop", "exact_duplicate"],
          [3, "train", "drop", "finish_reason"],
          [4, "train", "drop", "min_tokens"],
          [5, "train", "drop", "min_mean_log_prob"],
          [6, "train", "keep", "kept"],
          [7, "train", "keep", "kept"],
          [8, "train", "keep", "kept"],
          [9, "train", "drop", "max_tokens"]
        ]
      )

      const metrics = yield* store.query("SELECT node_id, name, step, value FROM metrics WHERE run_id = $1", [first.runId])
      const value = (node: string, name: string) => Number(metrics.rows.find((r) => r[0] === node && r[1] === name && r[2] === null)?.[3])
      assert.strictEqual(value("sft", "kept"), 4)
      assert.strictEqual(value("sft", "dropped"), 6)
      for (const rule of ["finish_reason", "min_tokens", "max_tokens", "min_mean_log_prob", "exact_duplicate", "near_duplicate"]) {
        assert.strictEqual(value("sft", `dropped_${rule}`), 1, rule)
      }
      const info = yield* store.query("SELECT CAST(info AS VARCHAR) FROM nodes WHERE run_id = $1 AND node_id = 'sft'", [first.runId])
      const recorded = JSON.parse(String(info.rows[0]![0])) as { rules: Array<{ rule: string }>; corpus: string }
      assert.deepStrictEqual(
        recorded.rules.map((r) => r.rule),
        ["finish_reason", "min_tokens", "max_tokens", "min_mean_log_prob", "exact_duplicate", "near_duplicate"]
      )
      assert.strictEqual(recorded.corpus, "brown")

      const outputs = first.nodes.find((n) => n.id === "sft")!.result!.outputs
      const kept = outputs.samples!
      const corpus = outputs.corpus! as TextCorpus
      const brown = first.nodes.find((n) => n.id === "brown")!.result!.outputs.corpus! as TextCorpus
      assert.strictEqual(kept._tag, "Generations")
      if (kept._tag === "Generations") assert.deepStrictEqual(kept.texts, [rows[0]!.text, rows[6]!.text, rows[7]!.text, rows[8]!.text])
      const heldOut = [...brown.splits.validation, ...brown.splits.test].map((d) => brown.ids[d]!)
      assert.deepStrictEqual(corpus.ids, ["p0#0", "p3#0", "p3#1", "p4#0", ...heldOut])
      assert.deepStrictEqual(Array.from(corpus.splits.train), [0, 1, 2, 3])
      assert.deepStrictEqual(Array.from(corpus.splits.validation), [4])
      assert.strictEqual(corpus.texts[4], brown.texts[brown.splits.validation[0]!])
      assert.strictEqual(corpus.prompts![1], "Story 3:")
      assert.strictEqual(corpus.completions![1], rows[6]!.text)

      // Prompt masking: in the train stream the prompts' bytes, and nothing else, are not counted.
      const stream = tokenStream(bytesTokenizer(), corpus, "train")
      assert.strictEqual(stream.counted.filter((c) => !c).length, 4 * "Story 0:".length)

      assert.isAbove(value("student", "train_tokens"), 0)
      assert.isAbove(value("student", "validation_tokens"), 1000)
      const curve = metrics.rows.filter((r) => r[0] === "student" && r[1] === "val_loss").map((r) => Number(r[3]))
      assert.strictEqual(curve.length, 1)
      assert.isTrue(Number.isFinite(curve[0]!))
      assert.strictEqual(value("student", "steps"), 10)

      const second = yield* executor.run(build({ filter: rules }))
      assert.deepStrictEqual(statuses(second), { samples: "cached", brown: "cached", bytes: "cached", sft: "cached", student: "cached" })
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("refuses an empty result (counts per rule), scorer rules without scores, and mix without a corpus", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const message = (filter: typeof LmFilterKind.params.Encoded, corpus = true) =>
        Effect.map(Effect.either(executor.run(build({ filter, corpus, train: false }))), (r) =>
          Either.isLeft(r) ? r.left.message : `the run succeeded: ${JSON.stringify(filter)}`
        )
      // Generated tokens per row: 46 46 49 47 3 59 52 58 54 90; row 3 ended by length.
      assert.match(
        yield* message({ finishReasons: ["stop"], minTokens: 53, maxTokens: 53 }),
        /node 'sft'.*every one of the 10 samples was dropped \(finish_reason 1, min_tokens 5, max_tokens 4\): loosen the rules/
      )
      assert.match(
        yield* message({ minMeanLogProb: -1, logProbBy: "scorer" }),
        /node 'sft'.*param 'logProbBy' is scorer but input 'samples' carries no scores/
      )
      assert.match(yield* message({ train: "mix" }, false), /node 'sft'.*param 'train' is mix but input 'corpus' is not wired/)
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("without a corpus the held-out splits are empty; with train: mix the real train documents follow the samples", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const corpusOf = (filter: typeof LmFilterKind.params.Encoded, corpus: boolean) =>
        Effect.map(executor.run(build({ filter, corpus, train: false })), (r) => ({
          sft: r.nodes.find((n) => n.id === "sft")!.result!.outputs.corpus! as TextCorpus,
          brown: r.nodes.find((n) => n.id === "brown")!.result!.outputs.corpus! as TextCorpus
        }))
      const alone = (yield* corpusOf({ dedupe: "exact" }, false)).sft
      assert.strictEqual(alone.splits.train.length, 9)
      assert.strictEqual(alone.splits.validation.length + alone.splits.test.length, 0)
      const { brown, sft } = yield* corpusOf({ dedupe: "exact", train: "mix" }, true)
      const trainIds = Array.from(sft.splits.train, (d) => sft.ids[d]!)
      assert.deepStrictEqual(trainIds.slice(9), Array.from(brown.splits.train, (d) => brown.ids[d]!))
      // A plain-text document has an empty prompt, so every one of its tokens counts.
      const d = sft.splits.train[9]!
      assert.strictEqual(sft.prompts![d], "")
      assert.strictEqual(sft.completions![d], brown.texts[brown.splits.train[0]!])
      assert.deepStrictEqual(sft.metadata![d], brown.metadata![brown.splits.train[0]!])
      assert.deepStrictEqual(
        Array.from(sft.splits.validation, (i) => sft.ids[i]),
        Array.from(brown.splits.validation, (i) => brown.ids[i])
      )
    }).pipe(Effect.provide(TestLayer))
  )
})

describe("sftCorpus", () => {
  it("carries answers and the samples' provenance", () => {
    const gen = makeGenerations([{ promptId: "q", sample: 2, prompt: "2+2=", text: "4", answer: "4" }])
    const corpus = sftCorpus(gen, undefined, "replace")
    assert.deepStrictEqual(corpus.ids, ["q#2"])
    assert.deepStrictEqual(corpus.texts, ["2+2=4"])
    assert.deepStrictEqual(corpus.answers, ["4"])
    assert.deepStrictEqual(corpus.metadata![0], { generator: "teacher", promptId: "q", sample: 2, finishReason: "stop", meanLogProb: -1 })
  })
})

describe("lm-seqkd-tiny pipeline", () => {
  it.live("lm_generate -> lm_filter -> lm_train: the student fine-tunes on its teacher's kept, scored samples", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const store = yield* ResultsStore
      const tensors = tf.memory().numTensors
      const run = yield* executor.run(yield* loadPipelineFile("pipelines/lm-seqkd-tiny.yaml", builtinRegistry))
      const ids = ["brown", "bytes", "teacher", "samples", "sft", "student", "eval_student"]
      assert.deepStrictEqual(statuses(run), Object.fromEntries(ids.map((id) => [id, "executed"])))
      assert.strictEqual(tf.memory().numTensors, tensors)

      const outputs = (id: string) => run.nodes.find((n) => n.id === id)!.result!.outputs
      const samples = outputs("samples").generations!
      const kept = outputs("sft").samples!
      const corpus = outputs("sft").corpus! as TextCorpus
      assert.strictEqual(samples._tag, "Generations")
      assert.strictEqual(kept._tag, "Generations")
      if (samples._tag !== "Generations" || kept._tag !== "Generations") return
      assert.strictEqual(samples.texts.length, 16)
      assert.isAbove(kept.texts.length, 0)
      // The scores follow the kept rows: one scored position per kept generated token.
      assert.strictEqual(kept.scores!.tokenLogProb.length, kept.tokens.length)
      assert.strictEqual(kept.scores!.indices.length, kept.tokens.length * kept.scores!.k)
      assert.strictEqual(kept.offsets[kept.texts.length], kept.tokens.length)
      assert.deepStrictEqual(corpus.completions!.slice(0, kept.texts.length), kept.texts)
      assert.deepStrictEqual(corpus.ids.slice(0, kept.texts.length), kept.promptIds.map((id, g) => `${id}#${kept.sample[g]}`))

      const examples = yield* store.query("SELECT decision, count(*) FROM examples WHERE run_id = $1 AND node_id = 'sft' GROUP BY decision", [run.runId])
      const count = (decision: string) => Number(examples.rows.find((r) => r[0] === decision)?.[1] ?? 0)
      assert.strictEqual(count("keep"), kept.texts.length)
      assert.strictEqual(count("keep") + count("drop"), 16)
      assert.isAbove(count("drop"), 0)
      const metrics = yield* store.query("SELECT node_id, name, value FROM metrics WHERE run_id = $1 AND step IS NULL", [run.runId])
      const value = (node: string, name: string) => Number(metrics.rows.find((r) => r[0] === node && r[1] === name)?.[2])
      assert.strictEqual(value("sft", "kept"), kept.texts.length)
      assert.strictEqual(value("student", "steps"), 10)
      assert.isAbove(value("student", "validation_tokens"), 0)
      assert.isBelow(value("eval_student", "bits_per_byte"), 9)
    }).pipe(Effect.provide(TestLayer))
  )
})
