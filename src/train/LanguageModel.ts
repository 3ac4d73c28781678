/**
 * The language-model family: the decoder of models/Transformer.ts trained on packed token sequences
 * (tokenizer/Pack.ts: inputs (N, T), targets shifted by one, -1 where a target is not counted) with
 * next-token cross-entropy, AdamW, linear warm-up then cosine decay, gradient clipping by global norm
 * and gradient accumulation. Training counts optimizer steps, not epochs: the sequences are read as a
 * stream of seeded shuffles (Loop.ts `epochOrder`), and every `evalEvery` steps is one round of
 * Loop.ts's epoch loop (validation, the best checkpoint by validation loss, early stopping). Each
 * optimizer step averages the mean losses of `accumulate` micro-batches of `batchSize` sequences.
 * With a teacher, each micro-batch's teacher logits are computed on the fly, outside the gradient tape
 * (the teacher is a constant), and handed to the loss (losses/tokenKd.ts); validation stays next-token
 * cross-entropy, so checkpoints are chosen on held-out CE whatever the objective.
 *
 * With `onPolicy` (GKD, Agarwal et al. 2024), a seeded draw per micro-batch makes a share lambda of
 * them on-policy: the batch's rows are replaced by the current student's continuations of their
 * prompts (train/OnPolicy.ts), the teacher scores those, and `onPolicy.loss` takes the divergence on
 * the generated positions. The other micro-batches are exactly the ones without it (lambda = 0 is
 * plain token-level KD, weight for weight).
 *
 * With `scored`, the training sequences are a model's scored samples (tokenizer/Pack.ts `packScored`)
 * and each micro-batch hands the loss the stored top-k + tail log-probs of its positions instead of a
 * teacher's logits: token-level KD with no teacher model at training time.
 *
 * When `train` carries per-target weights (a multi-task corpus's per-task loss weights, tokenizer/Pack.ts),
 * the loss is the weighted next-token cross-entropy (losses/nextToken.ts `weightedNextTokenLoss`: the
 * sum of w * NLL over counted targets / their count; all-ones weights give the unweighted loss exactly).
 * Weights apply to cross-entropy training only (no teacher, scores, on-policy batches or custom loss);
 * validation stays unweighted CE.
 */
import * as tf from "@tensorflow/tfjs"
import { backendCapabilities } from "../backend/Capabilities.js"
import type { Weight } from "../domain/Artifact.js"
import { deriveSeed, makeRng } from "../domain/Random.js"
import { nextTokenLoss, nextTokenNll, weightedNextTokenLoss } from "../losses/nextToken.js"
import { readWeights } from "../models/Network.js"
import type { Transformer } from "../models/Transformer.js"
import { buildTransformer, transformerFromWeights } from "../models/Transformer.js"
import type { TransformerSpec } from "../models/TransformerSpec.js"
import type { TokenTopk } from "../losses/tokenKd.js"
import type { PackedScores, PackedTokens } from "../tokenizer/Pack.js"
import { packedRows } from "../tokenizer/Pack.js"
import type { EpochReport, LoopOptions, OptimizerOptions, TrainInfo } from "./Contract.js"
import { epochOrder, makeBestWeights, makeEpochBook, runBatches, runEpochs, throwIfAborted } from "./Loop.js"
import type { ModelFamily, TrainableModel } from "./ModelFamily.js"
import type { OnPolicySettings } from "./OnPolicy.js"
import { isOnPolicy, sampleOnPolicyBatch } from "./OnPolicy.js"
import { makeUpdater } from "./Optimizer.js"
import { warmupCosine } from "./Schedule.js"
import { evaluate } from "./Score.js"

export type LanguageModelFamily = ModelFamily<TransformerSpec, PackedTokens, tf.Tensor2D, tf.Tensor3D, tf.Tensor2D>

/** A decoder from `initial` weights, or freshly initialised for `seed`. */
const buildDecoder = (spec: TransformerSpec, seed: number, initial?: ReadonlyArray<Weight>): Transformer =>
  initial !== undefined ? transformerFromWeights(spec, initial, seed) : buildTransformer(spec, seed)

export const languageModel: LanguageModelFamily = {
  build: buildDecoder,
  rows: packedRows,
  upload: (p) => {
    const n = packedRows(p)
    return { inputs: tf.tensor2d(p.inputs, [n, p.length], "int32"), labels: tf.tensor2d(p.targets, [n, p.length], "int32") }
  }
}

export interface LmTrainOptions {
  readonly spec: TransformerSpec
  readonly train: PackedTokens
  readonly validation?: PackedTokens
  readonly optimizer: OptimizerOptions
  /** Sequences per micro-batch. */
  readonly batchSize: number
  /** Micro-batches per optimizer step (gradient accumulation); default 1. */
  readonly accumulate?: number
  /** Optimizer steps in all. */
  readonly steps: number
  /** Steps per round: validation, checkpoint and progress every this many steps; divides `steps`. */
  readonly evalEvery: number
  /** Steps of linear warm-up before the cosine decay. */
  readonly warmupSteps: number
  /** The floor of the cosine decay, as a fraction of the optimizer's learning rate (default 0.1). */
  readonly minLrRatio?: number
  /** Clip the gradients to this global norm (absent: no clipping). */
  readonly clipNorm?: number
  readonly seed: number
  readonly checkpoint: "best" | "last"
  readonly earlyStopping?: LoopOptions["earlyStopping"]
  readonly signal?: AbortSignal
  /** After each round: its report, the optimizer steps done, tokens per second of training. */
  readonly onRound?: (r: EpochReport, step: number, tokensPerSecond: number) => void
  readonly evalBatchSize?: number
  readonly initial?: ReadonlyArray<Weight>
  /**
   * The objective (default next-token cross-entropy): student logits (B, T, V), targets (B, T), and the
   * teacher's logits (B, T, V) when a teacher is given -> scalar.
   */
  readonly loss?: (logits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits?: tf.Tensor3D) => tf.Scalar
  /** A teacher over the same vocabulary whose logits the loss reads; it is not trained. */
  readonly teacher?: Pick<TrainableModel<tf.Tensor2D, tf.Tensor3D>, "forward">
  /**
   * On-policy distillation (needs `teacher`): which micro-batches are the student's samples, how they
   * are drawn, and their loss: student logits (B, L, V), targets (B, L) -1 but at the generated
   * positions, the teacher's logits (B, L, V) -> scalar.
   */
  readonly onPolicy?: OnPolicySettings & {
    readonly loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits: tf.Tensor3D) => tf.Scalar
  }
  /**
   * Stored scores (excludes `teacher` and `onPolicy`): per position of `train`, a scorer's top-k + tail
   * log-probs, and the loss that reads them: student logits (B, T, V), targets (B, T), the batch's
   * scores (B, T, k) -> scalar.
   */
  readonly scored?: {
    readonly scores: PackedScores
    readonly loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, topk: TokenTopk) => tf.Scalar
  }
}

/** What the on-policy micro-batches cost and held. */
export interface OnPolicyReport {
  /** Micro-batches drawn from the student. */
  readonly batches: number
  /** Sequences sampled, all batches together. */
  readonly sequences: number
  /** Tokens the student generated, all sequences together. */
  readonly generatedTokens: number
  /** Wall time spent sampling the student. */
  readonly samplingSeconds: number
}

export interface LmTrainResult {
  readonly weights: Array<Weight>
  readonly info: TrainInfo & { readonly steps: number; readonly tokensPerSecond: number }
  /** With `initial` weights and validation data: the validation loss before the first step (the warm start's starting point). */
  readonly initialValLoss?: number
  readonly history: Array<EpochReport & { readonly step: number; readonly tokensPerSecond: number }>
  /** With `onPolicy`. */
  readonly onPolicy?: OnPolicyReport
}

const check = (cond: boolean, message: () => string): void => {
  if (!cond) throw new Error(message())
}

/** Trains a transformer on packed sequences; returns its weights, how they were chosen, and the per-round history. */
export const trainLanguageModel = async (o: LmTrainOptions): Promise<LmTrainResult> => {
  const n = packedRows(o.train)
  const accumulate = o.accumulate ?? 1
  check(n > 0, () => `no training sequences: the train split has fewer than ${o.train.length + 1} tokens`)
  check(o.train.length <= o.spec.context, () => `sequences of ${o.train.length} tokens exceed the model's context of ${o.spec.context}`)
  check(Number.isInteger(o.steps) && o.steps >= 1, () => `steps must be a positive integer, got ${o.steps}`)
  check(o.steps % o.evalEvery === 0, () => `evalEvery ${o.evalEvery} must divide steps ${o.steps}`)
  check(o.onPolicy === undefined || o.teacher !== undefined, () => "on-policy distillation needs a teacher to score the student's samples")
  check(o.scored === undefined || (o.teacher === undefined && o.onPolicy === undefined), () => "stored scores replace the teacher: give scored or teacher, not both")
  check(
    o.train.weights === undefined || (o.teacher === undefined && o.scored === undefined && o.onPolicy === undefined && o.loss === undefined),
    () => "per-target loss weights apply to next-token cross-entropy training only: not with a teacher, stored scores, on-policy batches or a custom loss"
  )
  check(
    o.train.weights === undefined || o.train.weights.length === o.train.inputs.length,
    () => `loss weights for ${o.train.weights!.length} positions, but the training sequences have ${o.train.inputs.length}`
  )
  check(
    o.scored === undefined || o.scored.scores.tailLogProb.length === o.train.inputs.length,
    () => `scores for ${o.scored!.scores.tailLogProb.length} positions, but the training sequences have ${o.train.inputs.length}`
  )
  throwIfAborted(o.signal)
  const started = performance.now()
  const backend = backendCapabilities()
  const rounds = o.steps / o.evalEvery
  const rowsPerRound = o.evalEvery * accumulate * o.batchSize
  const history: Array<EpochReport & { step: number; tokensPerSecond: number }> = []
  let step = 0
  let roundSpeed = 0
  const loop: LoopOptions = {
    optimizer: o.optimizer,
    batchSize: o.batchSize,
    epochs: rounds,
    seed: o.seed,
    checkpoint: o.checkpoint,
    onEpoch: (r) => {
      history.push({ ...r, step, tokensPerSecond: roundSpeed })
      o.onRound?.(r, step, roundSpeed)
    },
    ...(o.earlyStopping !== undefined ? { earlyStopping: o.earlyStopping } : {}),
    ...(o.signal !== undefined ? { signal: o.signal } : {})
  }
  const validated = o.validation !== undefined && packedRows(o.validation) > 0
  const book = makeEpochBook(loop, rowsPerRound, validated)
  const lossOf = o.loss ?? nextTokenLoss
  const schedule = warmupCosine({ peak: o.optimizer.learningRate, warmupSteps: o.warmupSteps, totalSteps: o.steps, minRatio: o.minLrRatio ?? 0.1 })

  // The decoder itself, not the family's TrainableModel view: on-policy batches sample it.
  const model = buildDecoder(o.spec, o.seed, o.initial)
  const best = makeBestWeights(model.variables)
  const updater = makeUpdater(o.optimizer, backend, o.clipNorm !== undefined ? { clipNorm: o.clipNorm } : {})
  const owned: Array<tf.Tensor> = []
  let accumulated: tf.NamedTensorMap | undefined
  const sampled = { batches: 0, sequences: 0, generatedTokens: 0, samplingMs: 0 }
  try {
    const variables = model.variables
    const data = languageModel.upload(o.train)
    owned.push(data.inputs, data.labels)
    const val = validated ? languageModel.upload(o.validation!) : undefined
    if (val !== undefined) owned.push(val.inputs, val.labels)
    const stored =
      o.scored !== undefined
        ? (() => {
            const { k, indices, logProbs, tailLogProb } = o.scored.scores
            const T = o.train.length
            return {
              indices: tf.tensor3d(indices, [n, T, k], "int32"), // (N, T, k)
              logProbs: tf.tensor3d(logProbs, [n, T, k]), // (N, T, k)
              tailLogProb: tf.tensor2d(tailLogProb, [n, T]) // (N, T)
            }
          })()
        : undefined
    if (stored !== undefined) owned.push(stored.indices, stored.logProbs, stored.tailLogProb)
    // (N, T) per-target loss weights, when the corpus has them.
    const lossWeights = o.train.weights !== undefined ? tf.tensor2d(o.train.weights, [n, o.train.length]) : undefined
    if (lossWeights !== undefined) owned.push(lossWeights)

    // The stream of sequence indices: pass e over the data is epochOrder(seed, e + 1, n).
    const orders = new Map<number, Int32Array>()
    const sequenceAt = (p: number): number => {
      const pass = Math.floor(p / n)
      let order = orders.get(pass)
      if (order === undefined) {
        orders.clear()
        order = epochOrder(o.seed, pass + 1, n)
        orders.set(pass, order)
      }
      return order[p % n]!
    }
    const onPolicy = o.onPolicy
    /** The current student's continuations of the prompts of the given training sequences (no gradient). */
    const sampleStudent = (sequences: Int32Array, round: number, b: number) => {
      const t0 = performance.now()
      const T = o.train.length
      const inputs = new Int32Array(sequences.length * T)
      const targets = new Int32Array(sequences.length * T)
      sequences.forEach((s, r) => {
        inputs.set(o.train.inputs.subarray(s * T, (s + 1) * T), r * T)
        targets.set(o.train.targets.subarray(s * T, (s + 1) * T), r * T)
      })
      const batch = sampleOnPolicyBatch(model, { length: T, inputs, targets }, onPolicy!, makeRng(deriveSeed(o.seed, "on-policy sample", round, b)))
      sampled.batches++
      sampled.sequences += batch.rows
      sampled.generatedTokens += batch.generated
      sampled.samplingMs += performance.now() - t0
      return batch
    }
    /** One micro-batch: its gradients added to the accumulator; every `accumulate`, an optimizer step. */
    const microBatch = (round: number, start: number, rows: number, b: number, sum: tf.Scalar): tf.Scalar => {
      const first = (round - 1) * rowsPerRound + start
      const sequences = Int32Array.from({ length: rows }, (_, i) => sequenceAt(first + i))
      const samples = onPolicy !== undefined && isOnPolicy(o.seed, onPolicy.lambda, round, b) ? sampleStudent(sequences, round, b) : undefined
      const next = tf.tidy(() => {
        let xb: tf.Tensor2D // (B, T) int32
        let yb: tf.Tensor2D // (B, T) int32, -1 = not counted
        let topk: TokenTopk | undefined
        let wb: tf.Tensor2D | undefined // (B, T) float32 loss weights
        if (samples === undefined) {
          const idx = tf.tensor1d(sequences, "int32")
          xb = tf.gather(data.inputs, idx) as tf.Tensor2D
          yb = tf.gather(data.labels, idx) as tf.Tensor2D
          if (lossWeights !== undefined) wb = tf.gather(lossWeights, idx) as tf.Tensor2D
          if (stored !== undefined) {
            topk = {
              indices: tf.gather(stored.indices, idx) as tf.Tensor3D, // (B, T, k)
              logProbs: tf.gather(stored.logProbs, idx) as tf.Tensor3D, // (B, T, k)
              tailLogProb: tf.gather(stored.tailLogProb, idx) as tf.Tensor2D // (B, T)
            }
          }
        } else {
          xb = tf.tensor2d(samples.inputs, [rows, samples.length], "int32") // (B, L) prompt + the student's tokens
          yb = tf.tensor2d(samples.targets, [rows, samples.length], "int32") // (B, L) counted at generated positions only
        }
        // (B, T, V) teacher logits, computed before the tape starts: no gradient flows into the teacher.
        const teacherLogits = o.teacher?.forward(xb, { training: false }).logits
        const studentLogits = () => model.forward(xb, { training: true, seed: deriveSeed(o.seed, "dropout", round, b) }).logits
        const { value, grads } = updater.gradients(
          () =>
            samples !== undefined
              ? onPolicy!.loss(studentLogits(), yb, teacherLogits!)
              : topk !== undefined
                ? o.scored!.loss(studentLogits(), yb, topk)
                : wb !== undefined
                  ? weightedNextTokenLoss(studentLogits(), yb, wb)
                  : lossOf(studentLogits(), yb, teacherLogits),
          variables
        )
        const previous = accumulated
        accumulated = Object.fromEntries(
          Object.entries(grads).map(([name, g]) => [name, tf.keep(previous === undefined ? g : tf.add(previous[name]!, g))])
        )
        if (previous !== undefined) tf.dispose(Object.values(previous))
        return tf.add(sum, tf.mul(value, rows)) as tf.Scalar
      })
      if ((b + 1) % accumulate === 0) {
        updater.setLearningRate(schedule(step))
        const grads = accumulated!
        accumulated = undefined
        tf.tidy(() => {
          // The mean of the micro-batches' mean-loss gradients.
          const mean = accumulate === 1 ? grads : Object.fromEntries(Object.entries(grads).map(([name, g]) => [name, tf.div(g, accumulate)]))
          updater.apply(mean, variables)
        })
        tf.dispose(Object.values(grads))
        step++
      }
      return next
    }

    // A warm start's starting point, before any step: the init model's own validation loss.
    const initialValLoss =
      o.initial !== undefined && val !== undefined
        ? (await evaluate(model, val.inputs, val.labels, Math.max(1, o.evalBatchSize ?? 64), o.signal))?.loss
        : undefined
    await runEpochs(loop, rowsPerRound, book, {
      train: async (round) => {
        const t0 = performance.now()
        let sum = tf.scalar(0)
        try {
          await runBatches(loop, rowsPerRound, round, (start, rows, b) => {
            const next = microBatch(round, start, rows, b, sum)
            sum.dispose()
            sum = next
          })
          const [total] = (await sum.data()) as Float32Array
          roundSpeed = (rowsPerRound * o.train.length) / ((performance.now() - t0) / 1000)
          return total!
        } finally {
          sum.dispose()
        }
      },
      validate: () => evaluate(model, val!.inputs, val!.labels, Math.max(1, o.evalBatchSize ?? 64), o.signal),
      saveBest: best.save
    })
    const weights = await readWeights(model, book.useBest() ? best.saved()! : variables)
    const info = book.info(backend.name, started)
    const speeds = history.map((h) => h.tokensPerSecond)
    return {
      weights,
      info: { ...info, steps: step, tokensPerSecond: speeds.length > 0 ? speeds.reduce((a, b) => a + b, 0) / speeds.length : 0 },
      ...(initialValLoss !== undefined ? { initialValLoss } : {}),
      history,
      ...(onPolicy !== undefined
        ? {
            onPolicy: {
              batches: sampled.batches,
              sequences: sampled.sequences,
              generatedTokens: sampled.generatedTokens,
              samplingSeconds: sampled.samplingMs / 1000
            }
          }
        : {})
    }
  } finally {
    if (accumulated !== undefined) tf.dispose(Object.values(accumulated))
    best.dispose()
    tf.dispose(owned)
    updater.dispose()
    model.dispose()
  }
}

/** Per target position of a pack, row-major (N, T): what `scoreLanguageModel` measures. */
export interface TokenScores {
  /** -log p(target) in nats, 0 where the target is not counted. */
  readonly nll: Float32Array
  /** With a teacher: 1 where the student's and the teacher's most likely next tokens agree. */
  readonly agree?: Float32Array
  /** With a teacher: KL(teacher || student) of the next-token distributions, in nats. */
  readonly kl?: Float32Array
}

/**
 * Scores a model (and optionally a teacher over the same vocabulary) on packed sequences,
 * `batchSize` sequences per forward pass, reading each batch's (B, T) results back.
 */
export const scoreLanguageModel = async (
  model: Pick<TrainableModel<tf.Tensor2D, tf.Tensor3D>, "forward">,
  pack: PackedTokens,
  batchSize: number,
  teacher?: Pick<TrainableModel<tf.Tensor2D, tf.Tensor3D>, "forward">
): Promise<TokenScores> => {
  const n = packedRows(pack)
  const T = pack.length
  const nll = new Float32Array(n * T)
  const agree = teacher !== undefined ? new Float32Array(n * T) : undefined
  const kl = teacher !== undefined ? new Float32Array(n * T) : undefined
  for (let start = 0; start < n; start += batchSize) {
    const rows = Math.min(batchSize, n - start)
    const out = tf.tidy(() => {
      const x = tf.tensor2d(pack.inputs.subarray(start * T, (start + rows) * T), [rows, T], "int32") // (B, T)
      const y = tf.tensor2d(pack.targets.subarray(start * T, (start + rows) * T), [rows, T], "int32") // (B, T)
      const logits = model.forward(x, { training: false }).logits // (B, T, V)
      const scores: Array<tf.Tensor> = [nextTokenNll(logits, y)]
      if (teacher !== undefined) {
        const t = teacher.forward(x, { training: false }).logits // (B, T, V)
        const logP = tf.logSoftmax(t) // teacher log-probs
        const logQ = tf.logSoftmax(logits) // student log-probs
        scores.push(tf.cast(tf.equal(tf.argMax(t, -1), tf.argMax(logits, -1)), "float32")) // (B, T)
        scores.push(tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), -1)) // (B, T) KL(teacher || student)
      }
      return scores
    })
    const values = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>))
    tf.dispose(out)
    nll.set(values[0]!, start * T)
    agree?.set(values[1]!, start * T)
    kl?.set(values[2]!, start * T)
  }
  return { nll, ...(agree !== undefined ? { agree, kl: kl! } : {}) }
}
