/**
 * pipelines/step-by-step-tiny.yaml (issue 12, distilling step-by-step) through the executor: every node
 * runs, the three students' lm_tasks corpora hold the expected tasks, prefixes and weights, the three
 * evaluations measure accuracy (and the step-by-step student its rationales), and no tensor is left
 * behind. Then the same document with only the `teacher` node replaced by an http_teacher pointing at
 * the teacher served by `distillery serve`'s server on loopback: every node runs, the endpoint teacher
 * writes the rationales the in-process one wrote, and eval_teacher measures it alike. A never-matching
 * answer pattern fails lm_parse naming the node (its per-row reasons are tested in lmParse.test.ts).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Layer } from "effect"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import type { RunResult } from "../../src/dag/Executor.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { LanguageModel, TextCorpus } from "../../src/domain/Artifact.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { startServer } from "../../src/serve/OpenAiServer.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("wasm"), Reporter.layerSilent))
)

const dir = mkdtempSync(join(tmpdir(), "distillery-step-by-step-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const tiny = "pipelines/step-by-step-tiny.yaml"

/** The tiny pipeline's text, changed by `edit`, written to a file of its own. */
const variant = (name: string, edit: (text: string) => string) => {
  const text = readFileSync(tiny, "utf8")
  const changed = edit(text)
  assert.notStrictEqual(changed, text, `${name}: the edit changed nothing`)
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, changed)
  return file
}

/** The `teacher` node (through the blank line after it) replaced by `node`. */
const withTeacher = (node: string) => (text: string) => text.replace(/^  - id: teacher\n    kind: lm_train\n[\s\S]*?\n\n/m, `${node}\n\n`)

const statuses = (r: RunResult) => Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))
const outputs = (r: RunResult, id: string) => r.nodes.find((n) => n.id === id)!.result!.outputs
const metric = (r: RunResult, id: string, name: string) => r.nodes.find((n) => n.id === id)!.result!.metrics.find((m) => m.name === name && m.step === undefined)?.value

const ids = [
  "teacher_data", "data", "bpe", "teacher", "teacher_train", "rationales", "teacher_test", "reference", "eval_teacher",
  "gold", "answers", "step_by_step", "student_gold", "student_answers", "student_step_by_step", "eval_gold", "eval_answers", "eval_step_by_step"
]

describe("step-by-step-tiny pipeline", () => {
  it.live("runs end to end in-process, then with the teacher served over HTTP by `distillery serve`'s server; a bad answer pattern names its node", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const tensors = tf.memory().numTensors
      const local = yield* executor.run(yield* loadPipelineFile(tiny, builtinRegistry))
      assert.deepStrictEqual(statuses(local), Object.fromEntries(ids.map((id) => [id, "executed"])))
      assert.strictEqual(tf.memory().numTensors, tensors)

      // The three students' data: the tasks, prefixes and loss weights asked for, from the first 20 train examples.
      const expected = { gold: ["answer"], answers: ["answer"], step_by_step: ["answer", "rationale"] } as const
      for (const [id, tasks] of Object.entries(expected)) {
        const corpus = outputs(local, id).corpus as TextCorpus
        const train = Array.from(corpus.splits.train)
        assert.deepStrictEqual([...new Set(train.map((d) => corpus.tasks![d]))], [...tasks], id)
        for (const d of train) {
          const task = corpus.tasks![d]!
          assert.isTrue(corpus.prompts![d]!.startsWith(`[${task}] `), `${id}: ${corpus.prompts![d]}`)
          assert.strictEqual(corpus.weights![d], 1)
          assert.strictEqual(corpus.ids[d]!.split(":")[0], task)
        }
        assert.isAtMost(train.filter((d) => corpus.tasks![d] === "answer").length, 20, id)
      }
      for (const id of ["eval_teacher", "eval_gold", "eval_answers", "eval_step_by_step"]) {
        const accuracy = metric(local, id, "accuracy")!
        assert.isAtLeast(accuracy, 0, id)
        assert.isAtMost(accuracy, 1, id)
      }
      const f1 = metric(local, "eval_step_by_step", "rationale.rationale_f1")!
      assert.isAtLeast(f1, 0)
      assert.isAtMost(f1, 1)

      // The same document, only the teacher node replaced by an http_teacher of the served teacher.
      const teacher = outputs(local, "teacher").model as LanguageModel
      const server = yield* Effect.promise(() => startServer({ model: teacher, name: "teacher", port: 0, concurrency: 2 }))
      const remote = yield* Effect.gen(function* () {
        const file = variant("endpoint", withTeacher(`  - { id: teacher, kind: http_teacher, params: { baseUrl: "${server.url}/v1", model: teacher } }`))
        return yield* executor.run(yield* loadPipelineFile(file, builtinRegistry))
      }).pipe(Effect.ensuring(Effect.promise(() => server.close())))
      for (const [id, status] of Object.entries(statuses(remote))) assert.include(["executed", "cached"], status, id)
      assert.deepStrictEqual(Object.keys(statuses(remote)).sort(), [...ids].sort())
      assert.strictEqual(statuses(remote).teacher, "executed")
      assert.strictEqual(tf.memory().numTensors, tensors)

      // Greedy decoding both ways, the same weights and prompts: the endpoint teacher writes the same
      // rationales and answers. The server decodes one token at a time through its KV cache, the
      // in-process teacher in batches over whole sequences, so their logits differ in the last float
      // bits and a near-tie could go the other way: 90% alike leaves room for that. (Today every row is.)
      for (const id of ["rationales", "reference"]) {
        const a = outputs(local, id).corpus as TextCorpus
        const b = outputs(remote, id).corpus as TextCorpus
        const byId = new Map(b.ids.map((x, d) => [x, `${b.rationales?.[d]} => ${b.answers?.[d]}`]))
        const same = a.ids.filter((x, d) => byId.get(x) === `${a.rationales?.[d]} => ${a.answers?.[d]}`).length
        assert.isAtLeast(same / Math.max(a.ids.length, b.ids.length), 0.9, `${id}: ${same} of ${a.ids.length} (${b.ids.length}) alike`)
      }
      assert.closeTo(metric(remote, "eval_teacher", "accuracy")!, metric(local, "eval_teacher", "accuracy")!, 0.1)
      // eval_teacher's verdicts row by row, each reason quoting the output: alike in at least 90% of rows.
      const store = yield* ResultsStore
      const verdicts = (r: RunResult) =>
        store
          .query("SELECT example_id, confidence, reason FROM examples WHERE run_id = $1 AND node_id = 'eval_teacher' ORDER BY example_id", [r.runId])
          .pipe(Effect.map((q) => q.rows.map((row) => JSON.stringify(row))))
      const [mine, theirs] = [yield* verdicts(local), yield* verdicts(remote)]
      assert.strictEqual(theirs.length, mine.length)
      assert.isAbove(mine.length, 0)
      assert.isAtLeast(mine.filter((v, i) => v === theirs[i]).length / mine.length, 0.9, JSON.stringify({ mine, theirs }))
      assert.include(JSON.stringify(remote.nodes.find((n) => n.id === "eval_teacher")!.result!.info), server.url)

      // A bad input: an answer pattern that matches no sample fails lm_parse naming the node and the
      // pattern (its per-row reasons are lmParse.test.ts's); the nodes before it are cache hits.
      const never = variant("never", (t) =>
        t.replace("inputs: { samples: teacher_train, corpus: data }\n    params: { normalise: number }", 'inputs: { samples: teacher_train, corpus: data }\n    params: { normalise: number, answerPattern: "#### (\\\\d+)" }')
      )
      const exit = yield* Effect.exit(executor.run(yield* loadPipelineFile(never, builtinRegistry)))
      assert.isTrue(Exit.isFailure(exit))
      const message = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
      assert.include(message, "node 'rationales'")
      assert.include(message, "param 'answerPattern' /#### (\\d+)/ matched none of the")
    }).pipe(Effect.provide(TestLayer)), 120_000)
})
