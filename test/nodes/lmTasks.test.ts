/**
 * `lm_tasks` through the executor: a built-in reasoning task (text, source: task) becomes an answer
 * task and a rationale task (weight 0.5), interleaved, with per-task metrics and decisions, and lm_train
 * trains on it with the weighted cross-entropy and records per-task document counts; a second run is
 * all cached. Then the refusals: a task reading a port that is not wired, a task name used twice,
 * rationales missing, and a weighted corpus with a teacher.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { TextCorpus } from "../../src/domain/Artifact.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { LmTasksKind, LmTasksParams } from "../../src/nodes/lm/tasks.js"
import { LmTrainKind } from "../../src/nodes/lm/train.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { runKind } from "../fixtures/context.js"
import { wideLanguageModel } from "../fixtures/transformer.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent))
)

const dir = mkdtempSync(join(tmpdir(), "distillery-lm-tasks-"))

const statuses = (r: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly status: string }> }) =>
  Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))

const stepByStep = [
  { name: "answer", prefix: "[answer] ", target: "answer" },
  { name: "rationale", prefix: "[rationale] ", target: "rationale", weight: 0.5 }
]

/** A prompt/completion corpus of three train documents, without rationales. */
const plainQa: TextCorpus = {
  _tag: "TextCorpus",
  name: "qa",
  ids: ["q0", "q1", "q2"],
  texts: ["Q0? 1", "Q1? 2", "Q2? 3"],
  prompts: ["Q0?", "Q1?", "Q2?"],
  completions: [" 1", " 2", " 3"],
  answers: ["1", "2", "3"],
  splits: { train: Int32Array.from([0, 1, 2]), validation: new Int32Array(0), test: new Int32Array(0) }
}

const message = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => "",
    (e: Error) => e.message
  )

describe("lm_tasks", () => {
  it.live("turns a reasoning task into answer and rationale tasks that lm_train trains on with per-task weights", () =>
    Effect.gen(function* () {
      const file = join(dir, "step-by-step.yaml")
      writeFileSync(
        file,
        `name: step-by-step
seed: 5
nodes:
  - { id: sums, kind: text, params: { source: task, task: arithmetic, examples: 40, validation: 0.1, test: 0.1 } }
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - id: multi
    kind: lm_tasks
    inputs: { a: sums }
    params:
      limit: 20
      tasks:
        - { name: answer, prefix: "[answer] ", target: answer }
        - { name: rationale, prefix: "[rationale] ", target: rationale, weight: 0.5 }
  - id: lm
    kind: lm_train
    inputs: { corpus: multi, tokenizer: bytes }
    params: { model: { type: transformer, layers: 1, width: 16, heads: 2, context: 64 }, batchSize: 4, steps: 4 }
`
      )
      const pipeline = yield* loadPipelineFile(file, builtinRegistry)
      const executor = yield* Executor
      const first = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(first), { sums: "executed", bytes: "executed", multi: "executed", lm: "executed" })
      const corpus = first.nodes.find((n) => n.id === "multi")!.result!.outputs.corpus!
      assert.strictEqual(corpus._tag, "TextCorpus")
      if (corpus._tag === "TextCorpus") {
        assert.deepStrictEqual([corpus.splits.train.length, corpus.splits.validation.length, corpus.splits.test.length], [40, 8, 8])
        const [d0, d1] = [corpus.splits.train[0]!, corpus.splits.train[1]!]
        assert.match(corpus.ids[d0]!, /^answer:arithmetic-\d{6}$/)
        assert.strictEqual(corpus.ids[d1], corpus.ids[d0]!.replace("answer:", "rationale:"))
        assert.isTrue(corpus.prompts![d0]!.startsWith("[answer] ") && corpus.prompts![d0]!.endsWith("\nAnswer:"))
        assert.isTrue(corpus.prompts![d1]!.startsWith("[rationale] "))
        assert.strictEqual(corpus.completions![d0], ` ${corpus.answers![d0]}`)
        assert.strictEqual(corpus.completions![d1], ` ${corpus.rationales![d1]}`)
        assert.deepStrictEqual([corpus.weights![d0], corpus.weights![d1]], [1, 0.5])
        assert.deepStrictEqual([corpus.tasks![d0], corpus.tasks![d1]], ["answer", "rationale"])
        assert.strictEqual(corpus.metadata![d1]!.task, "rationale")
      }

      const store = yield* ResultsStore
      const metrics = yield* store.query("SELECT node_id, name, value FROM metrics WHERE run_id = $1 AND step IS NULL", [first.runId])
      const value = (node: string, name: string) => Number(metrics.rows.find((r) => r[0] === node && r[1] === name)?.[2])
      assert.strictEqual(value("multi", "answer_train_documents"), 20)
      assert.strictEqual(value("multi", "rationale_train_documents"), 20)
      assert.strictEqual(value("multi", "rationale_validation_documents"), 4)
      assert.strictEqual(value("multi", "rationale_skipped"), 0)
      assert.strictEqual(value("multi", "train_documents"), 40)
      assert.strictEqual(value("lm", "train_documents_answer"), 20)
      assert.strictEqual(value("lm", "train_documents_rationale"), 20)
      assert.strictEqual(value("lm", "steps"), 4)
      const examples = yield* store.query("SELECT COUNT(*) FROM examples WHERE run_id = $1 AND node_id = 'multi' AND decision = 'keep'", [first.runId])
      assert.strictEqual(Number(examples.rows[0]![0]), 56)
      const info = yield* store.query("SELECT CAST(info AS VARCHAR) FROM nodes WHERE run_id = $1 AND node_id = 'lm'", [first.runId])
      const recorded = JSON.parse(String(info.rows[0]![0])) as { loss: string; tasks: Record<string, { trainDocuments: number; weight: number }> }
      assert.match(recorded.loss, /^weighted next-token cross-entropy/)
      assert.deepStrictEqual(recorded.tasks, { answer: { trainDocuments: 20, weight: 1 }, rationale: { trainDocuments: 20, weight: 0.5 } })

      const second = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(second), { sums: "cached", bytes: "cached", multi: "cached", lm: "cached" })
    }).pipe(Effect.provide(TestLayer))
  )

  it("refuses a task reading a port not wired, a task name used twice, and missing rationales", async () => {
    assert.match(
      await message(runKind(LmTasksKind, { tasks: [{ name: "x", from: "b", target: "answer" }] }, { a: plainQa })),
      /task 'x' reads input 'b', which is not wired/
    )
    assert.throws(
      () => Schema.decodeUnknownSync(LmTasksParams)({ tasks: [{ name: "x", target: "answer" }, { name: "x", target: "rationale" }] }),
      /task name 'x' is used twice/
    )
    assert.throws(() => Schema.decodeUnknownSync(LmTasksParams)({ tasks: [] }))
    assert.throws(() => Schema.decodeUnknownSync(LmTasksParams)({ tasks: [{ name: "x", target: "answer", weight: 0 }] }))
    assert.throws(() => Schema.decodeUnknownSync(LmTasksParams)({ tasks: [{ name: "x", from: "e", target: "answer" }] }))
    assert.strictEqual(
      await message(runKind(LmTasksKind, { tasks: stepByStep }, { a: plainQa })),
      "task 'rationale' (from input 'a', target rationale) has no train documents: input 'a' has no rationales: wire lm_parse's corpus or a task dataset with gold rationales (text with source: task)"
    )
    const ok = await runKind<{ corpus: TextCorpus }>(LmTasksKind, { tasks: [stepByStep[0]] }, { a: plainQa })
    assert.deepStrictEqual(ok.outputs.corpus.ids, ["answer:q0", "answer:q1", "answer:q2"])
  })

  it("lm_train refuses a weighted corpus with a teacher", async () => {
    const tokenizer = bytesTokenizer()
    const { outputs } = await runKind<{ corpus: TextCorpus }>(LmTasksKind, { tasks: [{ ...stepByStep[0], weight: 0.5 }] }, { a: plainQa })
    const model = { type: "transformer", layers: 1, width: 16, heads: 2, context: 8 } as const
    const teacher = wideLanguageModel(decodeTransformerSpec({ ...model, vocabSize: tokenizer.vocabSize }), tokenizer, 1)
    const error = await message(
      runKind(LmTrainKind, { model, steps: 1, batchSize: 1, objective: { divergence: "forward_kl", alpha: 0.5 } }, { corpus: outputs.corpus, tokenizer, teacher })
    )
    assert.match(error, /^per-task loss weights apply to cross-entropy training; corpus .* carries per-document loss weights \(lm_tasks\) but input 'teacher', param 'objective' are set/)
  })
})
