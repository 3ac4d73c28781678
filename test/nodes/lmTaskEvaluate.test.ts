/**
 * `lm_task_evaluate` through runKind: on a tiny random byte-level model and a generated reasoning
 * task, every task's metrics exist under their names and agree with the examples rows (accuracy = the
 * mean of the rows' correctness, rationale_f1 = the mean of their F1), every output is a generations
 * row, and no tensor is left behind; reference rationales from an lm_parse-like corpus are matched by
 * source id; the refusals name what is wrong. Then a tiny model trained on four examples' answer and
 * rationale tasks until it has memorised the answers answers every one right. The model is decoded
 * through the teacher interface: the same model served by `distillery serve`'s server and measured as an
 * http_teacher gives the same rows, and an endpoint that answers nothing counts every row wrong with
 * reason "failed: ..." rather than failing the node.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import type { LanguageModel, TeacherEndpoint, TextCorpus } from "../../src/domain/Artifact.js"
import { initBackend } from "../../src/backend/Backend.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { LmTaskEvaluateKind } from "../../src/nodes/lm/taskEvaluate.js"
import { LmTrainKind } from "../../src/nodes/lm/train.js"
import { startServer } from "../../src/serve/OpenAiServer.js"
import { TextKind } from "../../src/nodes/text.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { runKind } from "../fixtures/context.js"
import { wideLanguageModel } from "../fixtures/transformer.js"

type Recorded = Awaited<ReturnType<typeof runKind>>["recorded"]
const metric = (r: Recorded, name: string) => r.metrics.find((m) => m.name === name)?.value
const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
const taskRows = (r: Recorded, task: string) => r.examples.filter((e) => e.reason?.startsWith(`${task}: `))

const tokenizer = bytesTokenizer()
const randomModel = (): LanguageModel =>
  wideLanguageModel(decodeTransformerSpec({ type: "transformer", vocabSize: tokenizer.vocabSize, layers: 1, width: 16, heads: 2, context: 256 }), tokenizer, 5, 0.3)

const coinFlip = async (): Promise<TextCorpus> =>
  (await runKind<{ corpus: TextCorpus }>(TextKind, { source: "task", task: "coin_flip", examples: 20, people: 2, test: 0.3, validation: 0 }, {})).outputs.corpus

/** An http_teacher's endpoint artifact: no retries, no cache. */
const endpoint = (baseUrl: string, model: string): TeacherEndpoint => ({
  _tag: "TeacherEndpoint",
  baseUrl,
  model,
  api: "completions",
  concurrency: 4,
  timeoutSeconds: 30,
  retries: 0,
  topLogprobs: 0,
  maxFailureFraction: 0,
  price: { input: 0, output: 0 }
})

const tasks = [
  { name: "answer", prefix: "[answer] ", target: "answer" },
  { name: "cot", target: "completion", maxNewTokens: 12 },
  { name: "rationale", prefix: "[rationale] ", target: "rationale" }
]

/** A hand-built prompt/completion corpus, every document in `split`. */
const handCorpus = (
  records: ReadonlyArray<{ id: string; prompt: string; completion: string; answer?: string | null; rationale?: string | null; metadata?: Record<string, unknown> }>,
  split: "train" | "test"
): TextCorpus => {
  const all = Int32Array.from(records.keys())
  return {
    _tag: "TextCorpus",
    name: "hand",
    ids: records.map((r) => r.id),
    texts: records.map((r) => r.prompt + r.completion),
    prompts: records.map((r) => r.prompt),
    completions: records.map((r) => r.completion),
    answers: records.map((r) => r.answer ?? null),
    rationales: records.map((r) => r.rationale ?? null),
    metadata: records.map((r) => r.metadata ?? {}),
    splits: { train: split === "train" ? all : new Int32Array(0), validation: new Int32Array(0), test: split === "test" ? all : new Int32Array(0) }
  }
}

describe("lm_task_evaluate", () => {
  beforeAll(async () => {
    await initBackend("wasm")
  })

  it("records every task's metrics consistently with its rows, and leaks no tensor", async () => {
    const corpus = await coinFlip()
    const model = randomModel()
    const before = tf.memory().numTensors
    const { outputs, recorded } = await runKind<{ metrics: { values: Record<string, number>; subject: string } }>(
      LmTaskEvaluateKind,
      { tasks, maxNewTokens: 6, normalise: "label", batchSize: 4 },
      { model, corpus },
      { inputNodes: { model: "student", corpus: "tasks" } }
    )
    assert.strictEqual(tf.memory().numTensors, before)
    const docs = corpus.splits.test.length
    assert.isAbove(docs, 0)
    assert.strictEqual(metric(recorded, "examples"), docs)
    for (const name of ["answer.accuracy", "cot.accuracy", "rationale.rationale_f1", "rationale.rationale_exact", "rationale.rationale_bleu", "accuracy"]) {
      assert.isDefined(metric(recorded, name), name)
    }
    assert.isUndefined(metric(recorded, "rationale.accuracy"))
    assert.isUndefined(metric(recorded, "answer.rationale_f1"))
    // One examples row and one generations row per document per task.
    assert.strictEqual(recorded.examples.length, 3 * docs)
    assert.strictEqual(recorded.generations.length, 3 * docs)
    for (const task of ["answer", "cot"]) {
      const rows = taskRows(recorded, task)
      assert.strictEqual(rows.length, docs)
      for (const r of rows) assert.include([0, 1], r.confidence)
      assert.strictEqual(metric(recorded, `${task}.accuracy`), mean(rows.map((r) => r.confidence!)))
      assert.deepStrictEqual(rows.map((r) => r.exampleId), Array.from(corpus.splits.test))
      for (const r of rows) if (r.confidence === 0) assert.notMatch(r.reason!, /: correct: /)
    }
    assert.strictEqual(metric(recorded, "accuracy"), metric(recorded, "answer.accuracy"))
    const f1 = taskRows(recorded, "rationale").map((r) => r.confidence!)
    assert.closeTo(metric(recorded, "rationale.rationale_f1")!, mean(f1), 1e-12)
    assert.strictEqual(outputs.metrics.subject, "student")
    assert.strictEqual(recorded.examples[0]!.subject, "student")
    // Prompts carry the task prefix; outputs end at a newline or <eos> and respect the token budgets.
    const gens = recorded.generations
    assert.strictEqual(gens[0]!.prompt, `[answer] ${corpus.prompts![corpus.splits.test[0]!]}`)
    assert.strictEqual(gens[docs]!.prompt, corpus.prompts![corpus.splits.test[0]!])
    assert.deepStrictEqual([...new Set(gens.map((g) => g.sample))], [0, 1, 2])
    for (const g of gens) {
      assert.isAtMost(g.tokens, g.sample === 1 ? 12 : 6)
      if (g.finishReason === "length") assert.strictEqual(g.tokens, g.sample === 1 ? 12 : 6)
      assert.notInclude(g.text.slice(0, -1), "\n")
    }
  })

  it("matches an lm_parse corpus's rationales by source example id, best of several", async () => {
    const corpus = handCorpus(
      [
        { id: "q-1", prompt: "Q1\nAnswer:", completion: " x", answer: "x", rationale: "gold one" },
        { id: "q-2", prompt: "Q2\nAnswer:", completion: " y", answer: "y", rationale: "gold two" }
      ],
      "test"
    )
    // The teacher's: two samples of q-1, none of q-2 (so q-2 is not scored), ids <promptId>#<sample>.
    const reference = handCorpus(
      [
        { id: "q-1#0", prompt: "Q1\nAnswer:", completion: "", rationale: "zz", metadata: { promptId: "q-1" } },
        { id: "q-1#3", prompt: "Q1\nAnswer:", completion: "", rationale: "yy", metadata: { promptId: "q-1" } }
      ],
      "train"
    )
    const { recorded } = await runKind(LmTaskEvaluateKind, { tasks: [{ name: "why", target: "rationale" }], maxNewTokens: 4 }, { model: randomModel(), corpus, reference })
    const rows = taskRows(recorded, "why")
    assert.strictEqual(rows.length, 2)
    assert.isDefined(rows[0]!.confidence)
    assert.match(rows[1]!.reason!, /^why: no reference rationale; output /)
    assert.strictEqual(metric(recorded, "why.scored"), 1)
    assert.isUndefined(metric(recorded, "accuracy"))
  })

  it("refuses what it cannot measure, naming the task", async () => {
    const model = randomModel()
    const noRationales = handCorpus([{ id: "a", prompt: "Q\nAnswer:", completion: " 1", answer: "1" }], "test")
    const refused = (params: unknown, inputs: Record<string, unknown>) =>
      runKind(LmTaskEvaluateKind, params, inputs).then(() => "ran", (e: Error) => e.message)
    assert.match(await refused({ tasks: [{ name: "r", target: "rationale" }] }, { model, corpus: noRationales }), /task 'r' \(target rationale\): corpus 'hand' has no rationales/)
    const elsewhere = handCorpus([{ id: "b", prompt: "Q", completion: "", rationale: "why" }], "train")
    assert.match(await refused({ tasks: [{ name: "r", target: "rationale" }] }, { model, corpus: noRationales, reference: elsewhere }), /task 'r' \(target rationale\): input 'reference' \('hand'\) has a rationale for none/)
    assert.match(await refused({ tasks: [{ name: "a", target: "answer" }], split: "train" }, { model, corpus: noRationales }), /the train split of corpus 'hand' is empty/)
    const { prompts: _p, ...plain } = noRationales
    assert.match(await refused({ tasks: [{ name: "a", target: "answer" }] }, { model, corpus: plain }), /has no prompts/)
    const noGold = handCorpus([{ id: "a", prompt: "Q\nAnswer:", completion: " 1" }], "test")
    assert.match(await refused({ tasks: [{ name: "a", target: "answer" }] }, { model, corpus: noGold }), /task 'a' \(target answer\): corpus 'hand' has no gold answers/)
    assert.throws(() => Schema.decodeUnknownSync(LmTaskEvaluateKind.params)({ tasks: [] }))
    assert.throws(() => Schema.decodeUnknownSync(LmTaskEvaluateKind.params)({ tasks: [{ name: "c", target: "completion", answerPattern: "(a)(b)" }] }), /exactly one/)
    assert.throws(() => Schema.decodeUnknownSync(LmTaskEvaluateKind.params)({ tasks: [{ name: "a", target: "answer", answerPattern: "(a)" }] }), /completion only/)
    assert.throws(() => Schema.decodeUnknownSync(LmTaskEvaluateKind.params)({ tasks: [{ name: "a", target: "answer" }, { name: "a", target: "rationale" }] }), /occurs twice/)
  })

  it("measures a served model as an http_teacher exactly as in-process: the same outputs and verdicts", async () => {
    const corpus = await coinFlip()
    const model = randomModel()
    const params = { tasks, maxNewTokens: 6, normalise: "label", batchSize: 4 }
    const local = await runKind(LmTaskEvaluateKind, params, { model, corpus })
    const server = await startServer({ model, name: "random", port: 0 })
    try {
      const before = tf.memory().numTensors
      const served = await runKind(LmTaskEvaluateKind, params, { model: endpoint(`${server.url}/v1`, "random"), corpus })
      assert.strictEqual(tf.memory().numTensors, before)
      // The endpoint's text keeps no stop string and no <eos>; the first line of each is the output scored.
      assert.deepStrictEqual(served.recorded.examples, local.recorded.examples)
      for (const name of ["accuracy", "answer.accuracy", "cot.accuracy", "rationale.rationale_f1", "examples"]) {
        assert.strictEqual(metric(served.recorded, name), metric(local.recorded, name), name)
      }
      assert.deepStrictEqual(served.recorded.generations.map((g) => [g.promptId, g.sample, g.seed, g.prompt]), local.recorded.generations.map((g) => [g.promptId, g.sample, g.seed, g.prompt]))
      assert.include(JSON.stringify(served.recorded.info), server.url)
    } finally {
      await server.close()
    }
  })

  it("an endpoint that answers nothing: every row counts wrong with reason 'failed: ...', the node succeeds", async () => {
    const corpus = await coinFlip()
    // Port 1 on loopback refuses the connection; no retries.
    const { outputs, recorded } = await runKind<{ metrics: { values: Record<string, number> } }>(
      LmTaskEvaluateKind,
      { tasks, maxNewTokens: 4, normalise: "label" },
      { model: endpoint("http://127.0.0.1:1/v1", "nobody"), corpus },
      { inputNodes: { model: "remote", corpus: "tasks" } }
    )
    const docs = corpus.splits.test.length
    assert.strictEqual(recorded.examples.length, 3 * docs)
    for (const e of recorded.examples) {
      assert.strictEqual(e.confidence, 0)
      assert.match(e.reason!, /^(answer|cot|rationale): failed: POST http:\/\/127\.0\.0\.1:1\/v1\/completions: no answer/)
    }
    assert.strictEqual(outputs.metrics.values.accuracy, 0)
    assert.strictEqual(outputs.metrics.values["rationale.rationale_f1"], 0)
    assert.strictEqual(outputs.metrics.values.failed, 3 * docs)
    assert.deepStrictEqual([...new Set(recorded.generations.map((g) => g.finishReason))], ["failed"])
  })

  it("a model that memorised four examples' answers gets them all right", async () => {
    const examples = [
      { id: "m-0", q: "Is 7 odd?", answer: "yes", rationale: "7 ends in 7." },
      { id: "m-1", q: "Is 4 odd?", answer: "no", rationale: "4 ends in 4." },
      { id: "m-2", q: "Is 9 odd?", answer: "yes", rationale: "9 ends in 9." },
      { id: "m-3", q: "Is 2 odd?", answer: "no", rationale: "2 ends in 2." }
    ]
    const prompt = (q: string) => `${q}\nAnswer:`
    // Eight copies: packing cuts the stream into fixed windows, and each copy falls on other cuts.
    const train = handCorpus(
      Array.from({ length: 8 }, (_, copy) =>
        examples.flatMap((e) => [
          { id: `${e.id}/answer/${copy}`, prompt: `[answer] ${prompt(e.q)}`, completion: ` ${e.answer}` },
          { id: `${e.id}/rationale/${copy}`, prompt: `[rationale] ${prompt(e.q)}`, completion: ` ${e.rationale}` }
        ])
      ).flat(),
      "train"
    )
    const { outputs } = await runKind<{ model: LanguageModel }>(
      LmTrainKind,
      { model: { type: "transformer", layers: 2, width: 32, heads: 4, context: 64 }, sequenceLength: 64, batchSize: 8, steps: 200, checkpoint: "last", warmupSteps: 10, minLrRatio: 0.5, optimizer: { type: "adamw", learningRate: 0.01, weightDecay: 0 } },
      { corpus: train, tokenizer }
    )
    const test = handCorpus(examples.map((e) => ({ id: e.id, prompt: prompt(e.q), completion: ` ${e.rationale} The answer is ${e.answer}.`, answer: e.answer, rationale: e.rationale })), "test")
    const { recorded } = await runKind(
      LmTaskEvaluateKind,
      { tasks: [{ name: "answer", prefix: "[answer] ", target: "answer" }, { name: "rationale", prefix: "[rationale] ", target: "rationale", maxNewTokens: 20 }], maxNewTokens: 8 },
      { model: outputs.model, corpus: test }
    )
    assert.strictEqual(metric(recorded, "accuracy"), 1, JSON.stringify(recorded.examples.map((e) => e.reason)))
    // The rationales (longer, told apart by one digit) are mostly learnt by then: at least half exactly.
    assert.isAtLeast(metric(recorded, "rationale.rationale_exact")!, 0.5)
    assert.isAbove(metric(recorded, "rationale.rationale_f1")!, 0.5)
  }, 60_000)
})
