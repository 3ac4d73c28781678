/**
 * `text -> tokenizer -> lm_train -> lm_evaluate` through the executor, with pipelines/lm-tiny.yaml
 * itself: it runs, the second run is all cache hits, no tensor is left behind, and the metrics land in
 * the results store. pipelines/lm-kd-tiny.yaml the same way: a teacher, a scratch student, a forward-KL
 * student and a reverse-KL student warm-started from the scratch one, the objective recorded in
 * nodes.info, the warm start beginning at its init model. Bits per byte on a hand example; the params
 * are checked before anything runs; a teacher or init that does not fit is refused. Self-distillation
 * and on-policy distillation (GKD): a born-again student of its teacher's spec, a student warm-started
 * from its own teacher, and an on-policy student, scratch first, through the executor.
 */
import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Either, Layer, Schema } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { tokenMetrics } from "../../src/nodes/lm/common.js"
import { LmTrainParams } from "../../src/nodes/lm/train.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("wasm"), Reporter.layerSilent)
  )
)

const statuses = (r: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly status: string }> }) =>
  Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))

/** A run's metrics by node, name and step (NaN when absent). */
const runMetrics = (runId: string) =>
  Effect.gen(function* () {
    const rows = yield* (yield* ResultsStore).query("SELECT node_id, name, step, value FROM metrics WHERE run_id = $1", [runId])
    return (node: string, name: string, step: number | null = null) =>
      Number(rows.rows.find((r) => r[0] === node && r[1] === name && (r[2] ?? null) === step)?.[3])
  })

/** A run's lm_train nodes.info by node. */
const runInfo = (runId: string) =>
  Effect.gen(function* () {
    const info = yield* (yield* ResultsStore).query("SELECT node_id, CAST(info AS VARCHAR) FROM nodes WHERE run_id = $1 AND kind = 'lm_train'", [runId])
    return (id: string) => JSON.parse(String(info.rows.find((r) => r[0] === id)![1])) as Record<string, any>
  })

describe("lm-tiny pipeline", () => {
  it.live("trains and evaluates a transformer LM, then is all cache hits", () =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipelineFile("pipelines/lm-tiny.yaml", builtinRegistry)
      const executor = yield* Executor
      const tensors = tf.memory().numTensors
      const first = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(first), { brown: "executed", bytes: "executed", lm: "executed", eval: "executed" })
      assert.strictEqual(tf.memory().numTensors, tensors)

      const lm = first.nodes.find((n) => n.id === "lm")!.result!.outputs.model!
      assert.strictEqual(lm._tag, "LanguageModel")
      if (lm._tag === "LanguageModel") {
        assert.strictEqual(lm.tokenizer.vocabSize, 259)
        assert.strictEqual((lm.spec as { vocabSize: number }).vocabSize, 259)
      }

      const store = yield* ResultsStore
      const rows = yield* store.query("SELECT node_id, name, step, value FROM metrics WHERE run_id = $1 ORDER BY node_id, name, step", [first.runId])
      const value = (node: string, name: string, step: number | null = null) =>
        Number(rows.rows.find((r) => r[0] === node && r[1] === name && (r[2] ?? null) === step)?.[3])
      assert.deepStrictEqual(
        rows.rows.filter((r) => r[0] === "lm" && r[1] === "val_loss").map((r) => Number(r[2])),
        [10, 20, 30, 40]
      )
      assert.isBelow(value("lm", "val_loss", 40), value("lm", "val_loss", 10))
      assert.isAbove(value("lm", "tokens_per_second", 40), 0)
      assert.strictEqual(value("lm", "steps"), 40)
      assert.include([10, 20, 30, 40], value("lm", "best_step"))
      assert.strictEqual(value("lm", "kept_step"), value("lm", "best_step"))
      assert.strictEqual(value("lm", "best_val_loss"), Math.min(...[10, 20, 30, 40].map((s) => value("lm", "val_loss", s))))
      const bpb = value("eval", "bits_per_byte")
      // Byte-level: one byte per counted target except <eos>, so bits per byte ~ cross-entropy / ln 2.
      assert.closeTo(bpb, (value("eval", "cross_entropy") / Math.LN2) * (value("eval", "tokens") / value("eval", "bytes")), 1e-6)
      assert.isBelow(bpb, 8) // better than uniform over bytes
      assert.strictEqual(value("eval", "params"), value("lm", "params"))

      const second = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(second), { brown: "cached", bytes: "cached", lm: "cached", eval: "cached" })
    }).pipe(Effect.provide(TestLayer))
  )
})

/** A pipeline file in a fresh temporary folder: seed 2, `limit` Brown documents as brown, bytes and bytes2 (only <eos>) tokenizers, then `nodes`. */
const tinyPipeline = (name: string, limit: number, nodes: string): string => {
  const file = join(mkdtempSync(join(tmpdir(), "distillery-lm-")), `${name}.yaml`)
  writeFileSync(
    file,
    `name: ${name}
seed: 2
nodes:
  - { id: brown, kind: text, params: { source: brown, limit: ${limit} } }
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - { id: bytes2, kind: tokenizer, params: { type: bytes, special: ["<eos>"] } }
${nodes}`
  )
  return file
}

const teacherPipeline = (tokenizers: { readonly student: string; readonly teacher: string }) => {
  const model = "{ model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 4 }"
  return tinyPipeline(
    "lm-teacher",
    10,
    `  - { id: teacher, kind: lm_train, inputs: { corpus: brown, tokenizer: ${tokenizers.teacher} }, params: ${model} }
  - { id: student, kind: lm_train, seed: 3, inputs: { corpus: brown, tokenizer: ${tokenizers.student} }, params: ${model} }
  - { id: self, kind: lm_evaluate, inputs: { model: student, corpus: brown, teacher: student }, params: { split: validation } }
  - { id: fidelity, kind: lm_evaluate, inputs: { model: student, corpus: brown, teacher: teacher }, params: { split: validation } }
  - { id: capped, kind: lm_evaluate, inputs: { model: student, corpus: brown, teacher: teacher }, params: { split: validation, maxWindows: 2 } }
`
  )
}

describe("lm_evaluate with a teacher", () => {
  it.live("measures next-token agreement and KL(teacher || student); a teacher of another tokenizer is refused", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const run = yield* executor.run(yield* loadPipelineFile(teacherPipeline({ student: "bytes", teacher: "bytes" }), builtinRegistry))
      const metrics = (id: string) => {
        const m = run.nodes.find((n) => n.id === id)!.result!.outputs.metrics!
        return m._tag === "Metrics" ? m.values : {}
      }
      assert.strictEqual(metrics("self").agreement, 1)
      assert.closeTo(metrics("self").fidelity_kl!, 0, 1e-5)
      assert.isAbove(metrics("fidelity").fidelity_kl!, 0)
      assert.isBelow(metrics("fidelity").agreement!, 1)
      assert.strictEqual(metrics("fidelity").tokens, metrics("self").tokens)
      // maxWindows: the split's first 2 windows of 16 tokens, a prefix of what `fidelity` scores.
      assert.isAtMost(metrics("capped").tokens!, 32)
      assert.isBelow(metrics("capped").tokens!, metrics("fidelity").tokens!)

      const other = yield* loadPipelineFile(teacherPipeline({ student: "bytes", teacher: "bytes2" }), builtinRegistry)
      const error = yield* Effect.flip(executor.run(other))
      assert.match(error.message, /node 'fidelity': the teacher reads another tokenizer than the model/)
    }).pipe(Effect.provide(TestLayer))
  )
})

describe("lm-kd-tiny pipeline", () => {
  it.live("distils a teacher LM per token (forward KL; reverse KL from a warm start), then is all cache hits", () =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipelineFile("pipelines/lm-kd-tiny.yaml", builtinRegistry)
      const executor = yield* Executor
      const tensors = tf.memory().numTensors
      const first = yield* executor.run(pipeline)
      const ids = ["brown", "bytes", "teacher", "scratch", "forward_kl", "reverse_kl", "eval_teacher", "eval_scratch", "eval_forward_kl", "eval_reverse_kl"]
      assert.deepStrictEqual(statuses(first), Object.fromEntries(ids.map((id) => [id, "executed"])))
      assert.strictEqual(tf.memory().numTensors, tensors)

      const value = yield* runMetrics(first.runId)
      // The warm start begins at its init model: its validation loss before step 1 is the scratch student's kept one.
      assert.closeTo(value("reverse_kl", "val_loss", 0), value("scratch", "best_val_loss"), 1e-5)
      assert.isNaN(value("scratch", "val_loss", 0))
      for (const id of ["scratch", "forward_kl", "reverse_kl"]) {
        assert.isAbove(value(`eval_${id}`, "fidelity_kl"), 0)
        assert.isBelow(value(`eval_${id}`, "bits_per_byte"), 8)
      }
      assert.isAbove(value("eval_teacher", "params"), value("eval_scratch", "params"))

      const infoOf = yield* runInfo(first.runId)
      const reverse = infoOf("reverse_kl").objective
      assert.strictEqual(reverse.divergence, "reverse_kl")
      assert.match(reverse.direction, /student/)
      assert.strictEqual(reverse.reduction, "per token")
      assert.strictEqual(reverse.temperature, 1)
      assert.strictEqual(reverse.alpha, 0.5)
      assert.isString(reverse.formula)
      assert.strictEqual(infoOf("reverse_kl").init, "scratch")
      assert.strictEqual(infoOf("forward_kl").objective.divergence, "forward_kl")
      assert.isUndefined(infoOf("scratch").objective)

      const second = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(second), Object.fromEntries(ids.map((id) => [id, "cached"])))
    }).pipe(Effect.provide(TestLayer))
  )
})

const kdPipeline = (student: string) => {
  const model = "model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 2"
  return tinyPipeline(
    "lm-kd-refused",
    6,
    `  - { id: teacher, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes }, params: { ${model} } }
  - { id: wide, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes }, params: { model: { type: transformer, layers: 1, width: 32, heads: 2, context: 16 }, batchSize: 4, steps: 2 } }
  - ${student}
`
  )
}

describe("lm_train with a teacher or an init that does not fit", () => {
  it.live("refuses another tokenizer (naming both vocabularies), a teacher without an objective, and an init of another spec", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const refused = (student: string) =>
        Effect.gen(function* () {
          return (yield* Effect.flip(executor.run(yield* loadPipelineFile(kdPipeline(student), builtinRegistry)))).message
        })
      const objective = "objective: { divergence: forward_kl }"
      const mismatch = yield* refused(`{ id: kd, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes2, teacher: teacher }, params: { ${"model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 2"}, ${objective} } }`)
      assert.match(mismatch, /node 'kd': the teacher reads another tokenizer than the model/)
      assert.match(mismatch, /the teacher: bytes, 259 tokens \(0 merges, specials <pad> <bos> <eos>\); the model: bytes, 257 tokens \(0 merges, specials <eos>\)/)
      const noObjective = yield* refused(
        "{ id: kd, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes, teacher: teacher }, params: { model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 2 } }"
      )
      assert.match(noObjective, /input 'teacher' is wired but param 'objective' names no divergence/)
      const noTeacher = yield* refused(`{ id: kd, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes }, params: { model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 2, ${objective} } }`)
      assert.match(noTeacher, /param 'objective' distils by forward_kl but input 'teacher' is not wired/)
      const otherSpec = yield* refused(
        "{ id: kd, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes, init: wide }, params: { model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 2 } }"
      )
      assert.match(otherSpec, /input 'init' has another model spec \(width: 32 there, 16 here/)
    }).pipe(Effect.provide(TestLayer))
  )
})

const selfDistillation = () => {
  const model = "model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 4, evalEvery: 2"
  return tinyPipeline(
    "lm-self",
    6,
    `  - { id: scratch, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes }, params: { ${model} } }
  - id: born_again
    kind: lm_train
    seed: 3
    inputs: { corpus: brown, tokenizer: bytes, teacher: scratch }
    params: { ${model}, objective: { divergence: forward_kl, alpha: 0.5 } }
  - id: self_warm
    kind: lm_train
    inputs: { corpus: brown, tokenizer: bytes, teacher: scratch, init: scratch }
    params: { ${model}, objective: { divergence: reverse_kl, alpha: 1 } }
  - id: on_policy
    kind: lm_train
    inputs: { corpus: brown, tokenizer: bytes, teacher: scratch }
    params: { ${model}, objective: { divergence: generalized_jsd, beta: 0.9, alpha: 1 }, onPolicy: { lambda: 1, promptTokens: 8, temperature: 1, topK: 20, maxNewTokens: 6 } }
`
  )
}

describe("lm_train self-distillation and on-policy distillation", () => {
  it.live("a born-again student, a student warm-started from its own teacher and an on-policy student run, record what they did, then are all cache hits", () =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipelineFile(selfDistillation(), builtinRegistry)
      const executor = yield* Executor
      const tensors = tf.memory().numTensors
      const first = yield* executor.run(pipeline)
      const ids = ["brown", "bytes", "bytes2", "scratch", "born_again", "self_warm", "on_policy"]
      assert.deepStrictEqual(statuses(first), Object.fromEntries(ids.map((id) => [id, "executed"])))
      assert.strictEqual(tf.memory().numTensors, tensors)

      const value = yield* runMetrics(first.runId)
      // Warm-started from its teacher: it begins at the teacher's kept weights, where the divergence is 0.
      assert.closeTo(value("self_warm", "val_loss", 0), value("scratch", "best_val_loss"), 1e-5)
      assert.isBelow(value("self_warm", "train_loss", 2), 0.05)
      assert.isAbove(value("born_again", "train_loss", 2), 0)
      assert.strictEqual(value("on_policy", "on_policy_batches"), 4)
      assert.strictEqual(value("on_policy", "on_policy_sequences"), 16)
      assert.strictEqual(value("on_policy", "mean_generated_tokens"), 6)
      assert.isAbove(value("on_policy", "sampling_seconds"), 0)
      assert.isNaN(value("born_again", "on_policy_batches"))

      const infoOf = yield* runInfo(first.runId)
      assert.strictEqual(infoOf("born_again").teacher, "scratch")
      assert.strictEqual(infoOf("self_warm").init, "scratch")
      assert.strictEqual(infoOf("self_warm").teacher, "scratch")
      const onPolicy = infoOf("on_policy").onPolicy
      assert.strictEqual(onPolicy.lambda, 1)
      assert.strictEqual(onPolicy.promptTokens, 8)
      assert.strictEqual(onPolicy.maxNewTokens, 6)
      assert.deepStrictEqual(onPolicy.sampler, { temperature: 1, topK: 20 })
      assert.match(onPolicy.onPolicyLoss, /mean over generated tokens of generalized_jsd\(p_T, q_T\); no CE/)
      assert.strictEqual(infoOf("on_policy").objective.beta, 0.9)
      assert.isUndefined(infoOf("born_again").onPolicy)

      const second = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(second), Object.fromEntries(ids.map((id) => [id, "cached"])))
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("refuses onPolicy without a teacher and an objective, naming what to wire", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const model = "model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }, batchSize: 4, steps: 2"
      const error = yield* Effect.flip(
        executor.run(
          yield* loadPipelineFile(kdPipeline(`{ id: kd, kind: lm_train, inputs: { corpus: brown, tokenizer: bytes }, params: { ${model}, onPolicy: { lambda: 0.5, promptTokens: 4 } } }`), builtinRegistry)
        )
      )
      assert.match(error.message, /node 'kd': param 'onPolicy' scores the student's samples with a teacher: wire input 'teacher' \(a LanguageModel of the same tokenizer\) and set param 'objective'/)
    }).pipe(Effect.provide(TestLayer))
  )
})

describe("tokenMetrics", () => {
  it("bits per byte = total nats / ln 2 / UTF-8 bytes of the scored targets", () => {
    // Three counted targets (a 2-byte token, a 1-byte token, <eos> of 0 bytes) and a masked one.
    const m = tokenMetrics([1.5, 0.5, 1, 9], [300, 97, 258, -1], [2, 1, 0, 0])
    assert.strictEqual(m.tokens, 3)
    assert.strictEqual(m.bytes, 3)
    assert.closeTo(m.crossEntropy, 1, 1e-12)
    assert.closeTo(m.perplexity, Math.E, 1e-12)
    assert.closeTo(m.bitsPerByte, 3 / Math.LN2 / 3, 1e-12)
  })
})

describe("lm_train params", () => {
  it("are checked before anything runs", () => {
    const decode = (u: unknown) => Schema.decodeUnknownEither(LmTrainParams)(u, { onExcessProperty: "error" })
    const model = { type: "transformer", layers: 1, width: 16, heads: 2, context: 32 }
    const ok = decode({ model, steps: 20, evalEvery: 5 })
    assert.isTrue(Either.isRight(ok) && ok.right.optimizer.weightDecay === 0.1 && ok.right.sequenceLength === undefined)
    const fails = (p: object, pattern: RegExp) => {
      const r = decode({ model, ...p })
      assert.isTrue(Either.isLeft(r) && pattern.test(String(r.left)), String(Either.isLeft(r) ? r.left : "decoded"))
    }
    fails({ steps: 20, evalEvery: 3 }, /evalEvery 3 must divide steps 20/)
    fails({ steps: 20, warmupSteps: 20 }, /warmupSteps 20 must be below steps 20/)
    fails({ sequenceLength: 64 }, /sequenceLength 64 exceeds the model's context 32/)
    fails({ model: { ...model, heads: 3 } }, /multiple of heads 3/)
    fails({ model: { ...model, vocabSize: 300 } }, /vocabSize/)
    fails({ onPolicy: { lambda: 0.5, promptTokens: 32 } }, /onPolicy.promptTokens 32 must be below the sequence length 32/)
    fails({ onPolicy: { lambda: 1.5 } }, /lambda/)
    const gkd = decode({ model, onPolicy: { lambda: 0.5 } })
    assert.isTrue(Either.isRight(gkd) && gkd.right.onPolicy?.promptTokens === 16 && gkd.right.onPolicy.temperature === 1)
  })
})
