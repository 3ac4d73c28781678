/**
 * The language-model family: determinism per seed, no tensor left behind (per round and per run),
 * gradient accumulation equal to one larger batch, and the loss falling on a Brown slice; with a
 * teacher (token-level KD), the distillation loss falling toward a fixed teacher, determinism, and a
 * flat tensor count; a warm start begins exactly at its init model; on-policy distillation (GKD):
 * lambda = 0 is token-level KD weight for weight, determinism per seed, a flat tensor count, the
 * divergence falling on the student's own samples; stored top-k + tail scores in place of a teacher: with
 * k = V the same run as dense KD, with k < V the divergence falling, determinism and a flat tensor count.
 * Tiny transformers on the wasm backend, a few dozen steps.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import { loadTextCorpus } from "../../src/data/text.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import type { PackedTokens } from "../../src/tokenizer/Pack.js"
import { packCorpus } from "../../src/tokenizer/Pack.js"
import type { LmTrainOptions } from "../../src/train/LanguageModel.js"
import { scoreLanguageModel, trainLanguageModel } from "../../src/train/LanguageModel.js"
import { ObjectiveSpec } from "../../src/losses/ObjectiveSpec.js"
import type { TokenTopk } from "../../src/losses/tokenKd.js"
import { onPolicyDistillationLoss, tokenDistillationLoss, topkTokenDistillationLoss } from "../../src/losses/tokenKd.js"
import type { PackedScores } from "../../src/tokenizer/Pack.js"
import { buildTransformer, transformerFromWeights } from "../../src/models/Transformer.js"
import { logSoftmax, logSumExp } from "../losses/reference.js"
import { rulePack, weightsHash } from "../fixtures/transformer.js"

beforeAll(async () => {
  await initBackend("wasm")
})

const spec = decodeTransformerSpec({ type: "transformer", vocabSize: 20, layers: 1, width: 16, heads: 2, context: 8 })

const base: LmTrainOptions = {
  spec,
  train: rulePack(32, 1),
  validation: rulePack(8, 2),
  optimizer: { type: "adam", learningRate: 0.01, weightDecay: 0.1 },
  batchSize: 8,
  steps: 6,
  evalEvery: 3,
  warmupSteps: 2,
  clipNorm: 1,
  seed: 1,
  checkpoint: "best"
}

const firstRows = (p: PackedTokens, n: number): PackedTokens => ({
  length: p.length,
  inputs: p.inputs.subarray(0, n * p.length),
  targets: p.targets.subarray(0, n * p.length)
})

const values = (r: Awaited<ReturnType<typeof trainLanguageModel>>) => r.weights.flatMap((w) => Array.from(w.values))

describe("trainLanguageModel", () => {
  it("is deterministic per seed, and another seed differs", async () => {
    const a = await trainLanguageModel(base)
    const b = await trainLanguageModel(base)
    const c = await trainLanguageModel({ ...base, seed: 2 })
    assert.deepStrictEqual(values(a), values(b))
    assert.notDeepEqual(values(a), values(c))
    assert.strictEqual(a.info.steps, 6)
    assert.deepStrictEqual(a.history.map((h) => h.step), [3, 6])
  })

  it("leaves the tensor count flat across rounds and after the run", async () => {
    const before = tf.memory().numTensors
    const perRound: Array<number> = []
    // "last": no best-epoch copies, which the first round would not yet hold.
    await trainLanguageModel({ ...base, checkpoint: "last", accumulate: 2, onRound: () => perRound.push(tf.memory().numTensors) })
    assert.strictEqual(perRound.length, 2)
    assert.strictEqual(perRound[0], perRound[1])
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("accumulating 2 micro-batches of 4 gives the step of one batch of 8", async () => {
    const one = await trainLanguageModel({ ...base, checkpoint: "last" })
    const two = await trainLanguageModel({ ...base, checkpoint: "last", batchSize: 4, accumulate: 2 })
    const [x, y] = [values(one), values(two)]
    let worst = 0
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!))
    assert.isBelow(worst, 1e-4)
  })

  it("lowers the loss on a Brown slice", async () => {
    const { corpus } = await Effect.runPromise(loadTextCorpus({ source: "brown", limit: 10, validation: 0.2, test: 0, onLong: "fail", seed: 1 }))
    const tokenizer = bytesTokenizer()
    const lm = decodeTransformerSpec({ type: "transformer", vocabSize: tokenizer.vocabSize, layers: 1, width: 32, heads: 2, context: 32 })
    const r = await trainLanguageModel({
      ...base,
      spec: lm,
      train: packCorpus(tokenizer, corpus, "train", 32),
      validation: firstRows(packCorpus(tokenizer, corpus, "validation", 32), 64),
      optimizer: { type: "adam", learningRate: 0.01, weightDecay: 0.1 },
      batchSize: 8,
      steps: 30,
      evalEvery: 10,
      warmupSteps: 3
    })
    const [first, last] = [r.history[0]!, r.history[r.history.length - 1]!]
    assert.isBelow(last.valLoss!, first.valLoss!)
    assert.isBelow(last.valLoss!, Math.log(tokenizer.vocabSize) - 2) // far below uniform (5.56 nats)
    assert.isAbove(r.info.tokensPerSecond, 0)
  })

  it("scores per position: nll, and against a teacher agreement and KL(teacher || student) (float64 reference)", async () => {
    const student = buildTransformer(spec, 1)
    const teacher = buildTransformer(spec, 2)
    const p = rulePack(3, 5, 5)
    const before = tf.memory().numTensors
    const self = await scoreLanguageModel(student, p, 2, student)
    const other = await scoreLanguageModel(student, p, 2, teacher)
    assert.strictEqual(tf.memory().numTensors, before)
    assert.isTrue(self.agree!.every((a) => a === 1))
    assert.isTrue(self.kl!.every((k) => Math.abs(k) < 1e-5))
    const x = tf.tensor2d(p.inputs, [3, 8], "int32")
    const [zs, zt] = [student, teacher].map((m) => {
      const logits = m.forward(x, { training: false }).logits
      const values = Array.from(logits.dataSync())
      logits.dispose()
      return values
    })
    for (let i = 0; i < 24; i++) {
      const [ls, lt] = [zs!, zt!].map((z) => logSoftmax(z.slice(i * 20, (i + 1) * 20)))
      const y = p.targets[i]!
      assert.closeTo(other.nll[i]!, y < 0 ? 0 : -ls![y]!, 1e-4)
      const kl = lt!.reduce((sum, l, c) => sum + Math.exp(l) * (l - ls![c]!), 0)
      assert.closeTo(other.kl![i]!, kl, 1e-4)
    }
    tf.dispose(x)
    student.dispose()
    teacher.dispose()
  })
})

describe("trainLanguageModel with a teacher (token-level KD)", () => {
  const objective = (o: object) => Schema.decodeSync(ObjectiveSpec)(o as never)
  const kd = (o: object, teacherSeed = 9) => {
    const teacher = buildTransformer(spec, teacherSeed)
    const s = objective(o)
    return {
      teacher,
      options: {
        ...base,
        teacher,
        loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits?: tf.Tensor3D) => tokenDistillationLoss(s, logits, targets, teacherLogits)
      } satisfies LmTrainOptions
    }
  }

  it("lowers the distillation loss toward a fixed teacher (alpha = 1: the teacher is the only target)", async () => {
    for (const divergence of ["forward_kl", "reverse_kl"]) {
      const { teacher, options } = kd({ divergence, temperature: 2, alpha: 1 })
      const r = await trainLanguageModel({ ...options, steps: 20, evalEvery: 5, checkpoint: "last" })
      teacher.dispose()
      const losses = r.history.map((h) => h.trainLoss)
      assert.isBelow(losses[losses.length - 1]!, losses[0]! * 0.7, `${divergence}: ${losses.join(", ")}`)
    }
  })

  it("is deterministic per seed, leaves the tensor count flat, and the teacher's weights untouched", async () => {
    const { teacher, options } = kd({ divergence: "reverse_kl", temperature: 1, alpha: 0.5 })
    const teacherBefore = teacher.variables.map((v) => Array.from(v.dataSync()))
    const before = tf.memory().numTensors
    const perRound: Array<number> = []
    const a = await trainLanguageModel({ ...options, checkpoint: "last", onRound: () => perRound.push(tf.memory().numTensors) })
    assert.strictEqual(perRound[0], perRound[1])
    assert.strictEqual(tf.memory().numTensors, before)
    const b = await trainLanguageModel({ ...options, checkpoint: "last" })
    assert.deepStrictEqual(values(a), values(b))
    const ce = await trainLanguageModel({ ...base, checkpoint: "last" })
    assert.notDeepEqual(values(a), values(ce))
    assert.deepStrictEqual(teacher.variables.map((v) => Array.from(v.dataSync())), teacherBefore)
    teacher.dispose()
  })
})

describe("a warm start", () => {
  it("begins at the init model: the validation loss before step 1 is the init model's, and training goes on from there", async () => {
    const first = await trainLanguageModel({ ...base, seed: 4 })
    const warm = await trainLanguageModel({ ...base, seed: 5, initial: first.weights })
    const init = transformerFromWeights(spec, first.weights)
    const scores = await scoreLanguageModel(init, base.validation!, 64)
    init.dispose()
    const mean = scores.nll.reduce((a, b) => a + b, 0) / scores.nll.length // every target counts here
    assert.closeTo(warm.initialValLoss!, mean, 1e-5)
    assert.isBelow(warm.history[0]!.valLoss!, warm.initialValLoss! + 1e-3)
    const cold = await trainLanguageModel({ ...base, seed: 5 })
    assert.isUndefined(cold.initialValLoss)
    assert.isBelow(warm.history[0]!.valLoss!, cold.history[0]!.valLoss!)
  })
})

describe("trainLanguageModel on-policy (GKD)", () => {
  const hash = (r: Awaited<ReturnType<typeof trainLanguageModel>>) => weightsHash(r.weights)
  const gkd = (o: object, onPolicy: object | undefined, teacherSeed = 9) => {
    const teacher = buildTransformer(spec, teacherSeed)
    const s = Schema.decodeSync(ObjectiveSpec)(o as never)
    const options: LmTrainOptions = {
      ...base,
      checkpoint: "last",
      teacher,
      loss: (logits, targets, teacherLogits) => tokenDistillationLoss(s, logits, targets, teacherLogits),
      ...(onPolicy !== undefined
        ? {
            onPolicy: {
              lambda: 0.5,
              promptTokens: 3,
              sampler: { temperature: 1 },
              ...onPolicy,
              loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits: tf.Tensor3D) => onPolicyDistillationLoss(s, logits, targets, teacherLogits)
            }
          }
        : {})
    }
    return { teacher, options }
  }

  it("lambda = 0 is token-level KD weight for weight", async () => {
    const { teacher, options } = gkd({ divergence: "generalized_jsd", beta: 0.5, alpha: 0.5 }, { lambda: 0 })
    const { onPolicy: _onPolicy, ...supervised } = options
    const a = await trainLanguageModel(options)
    const b = await trainLanguageModel(supervised)
    teacher.dispose()
    assert.strictEqual(hash(a), hash(b))
    assert.deepStrictEqual(a.onPolicy, { batches: 0, sequences: 0, generatedTokens: 0, samplingSeconds: 0 })
  })

  it("is deterministic per seed, another seed differs, and the tensor count stays flat across rounds and after the run", async () => {
    const { teacher, options } = gkd({ divergence: "generalized_jsd", beta: 0.5, alpha: 0.5 }, { lambda: 0.5, maxNewTokens: 4 })
    const before = tf.memory().numTensors
    const perRound: Array<number> = []
    const a = await trainLanguageModel({ ...options, accumulate: 2, onRound: () => perRound.push(tf.memory().numTensors) })
    assert.strictEqual(perRound[0], perRound[1])
    assert.strictEqual(tf.memory().numTensors, before)
    const b = await trainLanguageModel({ ...options, accumulate: 2 })
    const c = await trainLanguageModel({ ...options, accumulate: 2, seed: 2 })
    const kd = await trainLanguageModel({ ...options, accumulate: 2, onPolicy: { ...options.onPolicy!, lambda: 0 } })
    teacher.dispose()
    assert.strictEqual(hash(a), hash(b))
    assert.notStrictEqual(hash(a), hash(c))
    assert.notStrictEqual(hash(a), hash(kd))
    // 12 micro-batches of 8 sequences, about half of them sampled; every prompt is 3 tokens, 4 new ones each.
    const r = a.onPolicy!
    assert.isTrue(r.batches > 0 && r.batches < 12, String(r.batches))
    assert.strictEqual(r.sequences, 8 * r.batches)
    assert.strictEqual(r.generatedTokens, 4 * r.sequences)
  })

  it("lambda = 1 with reverse KL lowers the divergence on the student's own samples", async () => {
    const { teacher, options } = gkd({ divergence: "reverse_kl", alpha: 1 }, { lambda: 1 })
    const r = await trainLanguageModel({ ...options, steps: 20, evalEvery: 5 })
    teacher.dispose()
    const losses = r.history.map((h) => h.trainLoss)
    assert.isBelow(losses[losses.length - 1]!, losses[0]! * 0.7, losses.join(", "))
    assert.strictEqual(r.onPolicy!.batches, 20)
    assert.strictEqual(r.onPolicy!.generatedTokens, 20 * 8 * (8 + 1 - 3))
  })
})

describe("trainLanguageModel on stored top-k scores", () => {
  const objective = (o: object) => Schema.decodeSync(ObjectiveSpec)(o as never)
  let teacher: ReturnType<typeof buildTransformer>
  beforeAll(() => {
    teacher = buildTransformer(spec, 9)
  })
  afterAll(() => teacher.dispose())
  const V = spec.vocabSize
  /** The teacher's top-k + tail log-probs at every position of `p` (tail in float64). */
  const scoresOf = (p: PackedTokens, k: number): PackedScores => {
    const n = p.inputs.length / p.length
    const lp = tf.tidy(() => teacher.forward(tf.tensor2d(p.inputs, [n, p.length], "int32"), { training: false }).logits.dataSync() as Float32Array)
    const indices = new Int32Array(p.inputs.length * k)
    const logProbs = new Float32Array(p.inputs.length * k)
    const tailLogProb = new Float32Array(p.inputs.length)
    for (let at = 0; at < p.inputs.length; at++) {
      const row = logSoftmax(Array.from(lp.subarray(at * V, (at + 1) * V)))
      const order = row.map((_, c) => c).sort((a, b) => row[b]! - row[a]!)
      order.slice(0, k).forEach((c, j) => {
        indices[at * k + j] = c
        logProbs[at * k + j] = row[c]!
      })
      tailLogProb[at] = logSumExp(order.slice(k).map((c) => row[c]!))
    }
    return { k, indices, logProbs, tailLogProb }
  }
  const stored = (o: object, k: number): LmTrainOptions => {
    const s = objective(o)
    return {
      ...base,
      checkpoint: "last",
      scored: { scores: scoresOf(base.train, k), loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, topk: TokenTopk) => topkTokenDistillationLoss(s, logits, targets, topk) }
    }
  }

  it("with k = V runs as dense KD from the teacher that made the scores", async () => {
    const o = { divergence: "jsd", temperature: 2, alpha: 0.5 }
    const s = objective(o)
    const full = await trainLanguageModel(stored(o, V))
    const dense = await trainLanguageModel({
      ...base,
      checkpoint: "last",
      teacher,
      loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits?: tf.Tensor3D) => tokenDistillationLoss(s, logits, targets, teacherLogits)
    })
    full.history.forEach((h, i) => assert.closeTo(h.trainLoss, dense.history[i]!.trainLoss, 1e-3 * Math.abs(h.trainLoss), `round ${i}`))
    const a = values(full)
    values(dense).forEach((w, i) => assert.closeTo(a[i]!, w, 1e-3))
  })

  it("with k < V lowers the divergence, is deterministic per seed, and leaves the tensor count flat", async () => {
    const options = { ...stored({ divergence: "forward_kl", temperature: 1, alpha: 1 }, 4), steps: 20, evalEvery: 5 }
    const before = tf.memory().numTensors
    const perRound: Array<number> = []
    const a = await trainLanguageModel({ ...options, onRound: () => perRound.push(tf.memory().numTensors) })
    assert.strictEqual(new Set(perRound).size, 1)
    assert.strictEqual(tf.memory().numTensors, before)
    const losses = a.history.map((h) => h.trainLoss)
    assert.isBelow(losses[losses.length - 1]!, losses[0]! * 0.7, losses.join(", "))
    const b = await trainLanguageModel(options)
    assert.deepStrictEqual(values(a), values(b))
    const other = await trainLanguageModel({ ...options, seed: 2 })
    assert.notDeepEqual(values(a), values(other))
  })
})
