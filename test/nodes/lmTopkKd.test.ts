/**
 * Offline token-level KD from stored scores through the executor, with pipelines/lm-topk-kd-tiny.yaml
 * itself: a tiny teacher samples and scores (top-8 + tail) its own continuations, `lm_train` distils a
 * student from those scores alone (input `scored`), `lm_evaluate` measures it. The student learns (its
 * validation loss falls), the run is deterministic per seed, a second run is all cache hits, and no
 * tensor is left behind. Then the refusals: samples without scores, another tokenizer, `scored` with
 * `teacher` or `onPolicy`, and no objective.
 */
import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { Generations, LanguageModel } from "../../src/domain/Artifact.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const TestLayer = () =>
  Executor.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("wasm"), Reporter.layerSilent))
  )

const statuses = (r: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly status: string }> }) =>
  Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))

const ids = ["brown", "bytes", "teacher", "samples", "student", "eval"]

/** One run of the pipeline in a fresh store: its statuses, the student's weights and val_loss per step, the scores. */
const runOnce = (file: string, twice: boolean) =>
  Effect.gen(function* () {
    const pipeline = yield* loadPipelineFile(file, builtinRegistry)
    const executor = yield* Executor
    const tensors = tf.memory().numTensors
    const first = yield* executor.run(pipeline)
    const leaked = tf.memory().numTensors - tensors
    const output = (id: string, port: string) => first.nodes.find((n) => n.id === id)!.result!.outputs[port]!
    const rows = yield* (yield* ResultsStore).query("SELECT node_id, name, step, value FROM metrics WHERE run_id = $1", [first.runId])
    const metric = (node: string, name: string, step: number | null = null) =>
      Number(rows.rows.find((r) => r[0] === node && r[1] === name && (r[2] ?? null) === step)?.[3])
    const info = yield* (yield* ResultsStore).query("SELECT CAST(info AS VARCHAR) FROM nodes WHERE run_id = $1 AND node_id = 'student'", [first.runId])
    const second = twice ? statuses(yield* executor.run(pipeline)) : undefined
    return {
      statuses: statuses(first),
      second,
      leaked,
      student: output("student", "model") as LanguageModel,
      samples: output("samples", "generations") as Generations,
      metric,
      info: JSON.parse(String(info.rows[0]![0])) as Record<string, any>
    }
  }).pipe(Effect.provide(TestLayer()))

describe("lm-topk-kd-tiny pipeline", () => {
  it.live("distils a student from stored top-k + tail scores alone: it learns, is deterministic per seed, then is all cache hits", () =>
    Effect.gen(function* () {
      const a = yield* runOnce("pipelines/lm-topk-kd-tiny.yaml", true)
      assert.deepStrictEqual(a.statuses, Object.fromEntries(ids.map((id) => [id, "executed"])))
      assert.deepStrictEqual(a.second, Object.fromEntries(ids.map((id) => [id, "cached"])))
      assert.strictEqual(a.leaked, 0)

      const scores = a.samples.scores!
      assert.strictEqual(scores.k, 8)
      assert.strictEqual(scores.scorer, "teacher")
      const G = a.samples.promptIds.length
      // Every sample with a generated token is one training sequence; the counted targets are the generated tokens.
      const generated = Array.from({ length: G }, (_, r) => a.samples.offsets[r + 1]! - a.samples.offsets[r]!)
      assert.strictEqual(a.metric("student", "scored_sequences"), generated.filter((n) => n > 0).length)
      assert.strictEqual(a.metric("student", "train_tokens") + a.metric("student", "scored_tokens_cut"), a.samples.tokens.length)
      assert.strictEqual(a.metric("student", "scored_tokens_cut"), 0)

      const val = [5, 10, 15, 20].map((s) => a.metric("student", "val_loss", s))
      assert.isBelow(val[3]!, val[0]!, val.join(", "))
      assert.isBelow(a.metric("eval", "cross_entropy"), Math.log(259))
      assert.strictEqual(a.metric("student", "steps"), 20)
      assert.strictEqual(a.info.scored.node, "samples")
      assert.strictEqual(a.info.scored.scorer, "teacher")
      assert.strictEqual(a.info.objective.divergence, "forward_kl")
      assert.match(a.info.loss, /^2 \* mean over scored generated tokens of forward_kl\(p_T, q_T\) on the top-8 \+ tail buckets \+ 0.5 \* next-token CE/)
      assert.isUndefined(a.info.teacher)

      const b = yield* runOnce("pipelines/lm-topk-kd-tiny.yaml", false)
      assert.deepStrictEqual(
        b.student.weights.map((w) => Array.from(w.values)),
        a.student.weights.map((w) => Array.from(w.values))
      )
    })
  )
})

const refusal = (student: string, samples = "{ id: samples, kind: lm_generate, inputs: { model: teacher, corpus: brown, teacher: teacher }, params: { split: train, limit: 2, promptTokens: 4, maxNewTokens: 4, scoreTopK: 4 } }") => {
  const file = join(mkdtempSync(join(tmpdir(), "distillery-topk-")), "refused.yaml")
  const model = "model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 2"
  writeFileSync(
    file,
    `name: topk-refused
seed: 2
nodes:
  - { id: brown, kind: text, params: { source: brown, limit: 6 } }
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - { id: bytes2, kind: tokenizer, params: { type: bytes, special: ["<eos>"] } }
  - { id: teacher, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes }, params: { ${model} } }
  - ${samples}
  - { id: kd, kind: lm_train, ${student.replace("MODEL", model)} }
`
  )
  return file
}

describe("lm_train with scored samples that do not fit", () => {
  it.live("refuses samples without scores, another tokenizer, scored with teacher or onPolicy, and a missing objective", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const refused = (file: string) =>
        Effect.gen(function* () {
          return (yield* Effect.flip(executor.run(yield* loadPipelineFile(file, builtinRegistry)))).message
        })
      const objective = "objective: { divergence: reverse_kl }"
      const unscored = yield* refused(
        refusal(
          `inputs: { corpus: brown, tokenizer: bytes, scored: samples }, params: { MODEL, ${objective} }`,
          "{ id: samples, kind: lm_generate, inputs: { model: teacher, corpus: brown }, params: { split: train, limit: 2, promptTokens: 4, maxNewTokens: 4 } }"
        )
      )
      assert.match(unscored, /node 'kd': input 'scored' \('samples'\) holds samples without scores: wire a teacher scorer into lm_generate's input 'teacher'.*lm_score/)
      const other = yield* refused(refusal(`inputs: { corpus: brown, tokenizer: bytes2, scored: samples }, params: { MODEL, ${objective} }`))
      assert.match(other, /input 'scored' \('samples'\) reads another tokenizer than the model/)
      assert.match(other, /bytes, 259 tokens \(0 merges, specials <pad> <bos> <eos>\); the model: bytes, 257 tokens \(0 merges, specials <eos>\)/)
      const both = yield* refused(refusal(`inputs: { corpus: brown, tokenizer: bytes, scored: samples, teacher: teacher }, params: { MODEL, ${objective} }`))
      assert.match(both, /inputs 'scored' and 'teacher' are both wired/)
      const onPolicy = yield* refused(
        refusal(`inputs: { corpus: brown, tokenizer: bytes, scored: samples }, params: { MODEL, ${objective}, onPolicy: { lambda: 0.5, promptTokens: 4 } }`)
      )
      assert.match(onPolicy, /param 'onPolicy' samples the student and needs input 'teacher'.*drop param 'onPolicy'/)
      const none = yield* refused(refusal("inputs: { corpus: brown, tokenizer: bytes, scored: samples }, params: { MODEL }"))
      assert.match(none, /input 'scored' is distilled by param 'objective', which is missing: add e.g. objective: .*divergences: forward_kl, reverse_kl/)
    }).pipe(Effect.provide(TestLayer()))
  )
})
