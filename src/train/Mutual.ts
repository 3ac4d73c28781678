/**
 * Deep mutual learning (Zhang, Xiang, Hospedales & Lu 2018, "Deep Mutual Learning"): K >= 2 students
 * trained together from scratch, each one a teacher for the others. On every batch, student k minimises
 *
 *   L_k = CE(labels, q_k) + weight * w_T * (1 / (K - 1)) * sum_{l != k} mean_b KL(q_l,T || q_k,T)
 *
 * with q_l the other students' predictions on the same batch, treated as constants (no gradient flows
 * into student l through L_k), and w_T = T^2 (1 at the paper's T = 1). The paper updates the students
 * one after the other, recomputing predictions in between; here every student's targets are the
 * predictions at the start of the step and all K students are updated from them, so the result does not
 * depend on the order in which the students are listed.
 *
 * Batching follows Trainer.ts: the data goes to the device once, each epoch has its own seeded shuffle
 * (shared by the students, so they see the same batches), each student's dropout masks have their own
 * stream, the loss is summed on the device and read once per epoch, the loop yields between batches and
 * checks the abort signal, and every tensor is freed whatever happens. Validation measures each student
 * after every epoch; "best" keeps each student's weights from its own best val_loss epoch.
 */
import * as tf from "@tensorflow/tfjs"
import { featureSize } from "../domain/Artifact.js"
import type { Weight } from "../domain/Artifact.js"
import { deriveSeed } from "../domain/Random.js"
import type { ObjectiveSpec } from "../losses/Objective.js"
import { divergencePerExample, hardLabelCrossEntropy, temperatureFactor } from "../losses/Objective.js"
import type { ModelSpec } from "../models/ModelSpec.js"
import type { Network } from "../models/Network.js"
import { buildModel, networkWeights, readWeights } from "../models/Network.js"
import type { StepOptimizer } from "./FusedAdam.js"
import type { BatchReport, OptimizerOptions } from "./Trainer.js"
import { runEpoch, throwIfAborted } from "./Loop.js"
import { disposeOptimizer, evaluate, makeOptimizer } from "./Trainer.js"

export interface MutualOptions {
  /** One spec per student, K >= 2; student k is initialised from deriveSeed(seed, "student", k). */
  readonly students: ReadonlyArray<ModelSpec>
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  /** Rows aligned; y = -1 marks an unlabelled row (no CE; the mimicry term still applies). */
  readonly train: { readonly x: Float32Array; readonly y: Int32Array }
  readonly validation?: { readonly x: Float32Array; readonly y: Int32Array }
  readonly optimizer: OptimizerOptions
  readonly batchSize: number
  readonly epochs: number
  readonly seed: number
  /** Weight of the mean KL to the other students. */
  readonly weight: number
  /** Temperature of the KL term (1 in the paper). */
  readonly temperature: number
  readonly checkpoint: "best" | "last"
  readonly onEpoch?: (r: MutualEpochReport) => void
  readonly onBatch?: (r: BatchReport) => void
  readonly onBatchEvery?: number
  readonly signal?: AbortSignal
  readonly evalBatchSize?: number
}

export interface StudentEpoch {
  /** Mean of L_k over the epoch's examples. */
  readonly trainLoss: number
  readonly valLoss?: number
  readonly valAccuracy?: number
}

export interface MutualEpochReport {
  readonly epoch: number
  readonly epochs: number
  readonly students: ReadonlyArray<StudentEpoch>
  readonly seconds: number
}

export interface StudentResult {
  readonly weights: Array<Weight>
  readonly info: {
    readonly checkpoint: "best" | "last"
    /** The epoch whose weights are returned. */
    readonly epoch: number
    readonly epochs: number
    readonly bestEpoch: number
    readonly selectedOn: "val_loss" | "train_loss"
    readonly bestValue: number
    /** Validation accuracy of the returned weights (NaN without a validation split). */
    readonly valAccuracy: number
    readonly backend: string
    readonly seconds: number
  }
}

export interface MutualResult {
  readonly students: ReadonlyArray<StudentResult>
  /** Index of the student with the highest validation accuracy (ties: the first); 0 without validation. */
  readonly best: number
  readonly history: ReadonlyArray<MutualEpochReport>
}

/** Trains the students together and returns each one's weights, the best one and the per-epoch history. */
export const trainMutual = async (o: MutualOptions): Promise<MutualResult> => {
  const K = o.students.length
  const d = featureSize(o.featureShape)
  const n = o.train.y.length
  if (K < 2) throw new Error(`mutual learning needs at least 2 students, got ${K}`)
  if (n === 0) throw new Error("no training examples")
  if (o.train.x.length !== n * d) throw new Error(`train.x has ${o.train.x.length} values; expected ${n} rows x ${d}`)
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) throw new Error(`batchSize must be a positive integer, got ${o.batchSize}`)
  if (!(Number.isInteger(o.epochs) && o.epochs >= 1)) throw new Error(`epochs must be a positive integer, got ${o.epochs}`)
  throwIfAborted(o.signal)
  const started = performance.now()
  const evalBatch = Math.max(1, o.evalBatchSize ?? 512)
  const validated = o.validation !== undefined && o.validation.y.length > 0
  // Only divergence, temperature and scaleT2 are read; the rest are ObjectiveSpec's defaults.
  const klSpec: ObjectiveSpec = {
    divergence: "forward_kl",
    temperature: o.temperature,
    alpha: 1,
    scaleT2: true,
    beta: 0.5,
    skew: 0.1,
    space: "probs"
  }
  const klFactor = temperatureFactor(klSpec)

  const owned: Array<tf.Tensor> = []
  const own = <T extends tf.Tensor>(t: T): T => {
    owned.push(t)
    return t
  }
  const nets: Array<Network> = []
  const optimizers: Array<tf.Optimizer | StepOptimizer> = []
  const best: Array<Array<tf.Tensor> | undefined> = o.students.map(() => undefined)
  try {
    o.students.forEach((spec, k) => nets.push(buildModel(spec, o.featureShape, o.numClasses, deriveSeed(o.seed, "student", k))))
    o.students.forEach(() => optimizers.push(makeOptimizer(o.optimizer)))
    const xAll = own(tf.tensor2d(o.train.x, [n, d]))
    const yAll = own(tf.tensor1d(o.train.y, "int32"))
    const val = validated
      ? { x: own(tf.tensor2d(o.validation!.x, [o.validation!.y.length, d])), y: own(tf.tensor1d(o.validation!.y, "int32")) }
      : undefined
    const wd = o.optimizer.weightDecay ?? 0
    const sgdDecay = o.optimizer.type === "sgd" && wd > 0 ? own(tf.scalar(wd)) : undefined
    const adamDecay = o.optimizer.type === "adam" && wd > 0 ? own(tf.scalar(1 - o.optimizer.learningRate * wd)) : undefined

    /** One step of every student on rows perm[start, start + rows); returns the new (K) loss sums. */
    const step = (perm: tf.Tensor1D, start: number, rows: number, epoch: number, b: number, sums: tf.Tensor1D): tf.Tensor1D =>
      tf.tidy(() => {
        const idx = tf.slice(perm, start, rows)
        const xb = tf.gather(xAll, idx) // (B, D)
        const yb = tf.gather(yAll, idx) // (B) int32
        const seeds = nets.map((_, k) => deriveSeed(o.seed, "dropout", k, epoch, b))
        // (B, C) each student's logits with the dropout masks of its own step below: the others' targets
        const targets = nets.map((net, k) => net.forward(xb, { training: true, seed: seeds[k]! }).logits)
        const values = nets.map((net, k) => {
          const { value, grads } = tf.variableGrads(() => {
            const logits = net.forward(xb, { training: true, seed: seeds[k]! }).logits // (B, C)
            const ce = hardLabelCrossEntropy(logits, yb)
            // (K - 1) mean_b KL(q_l,T || q_k,T) for each other student l
            const kls = targets.flatMap((t, l) => (l === k ? [] : [tf.mean(divergencePerExample(klSpec, logits, { logits: t }))]))
            return tf.add(ce, tf.mul(tf.mean(tf.stack(kls)), o.weight * klFactor)) as tf.Scalar
          }, net.variables as Array<tf.Variable>)
          if (sgdDecay !== undefined) {
            for (const v of net.variables) {
              const g = grads[v.name]
              if (g !== undefined) grads[v.name] = tf.add(g, tf.mul(v, sgdDecay))
            }
          }
          if (adamDecay !== undefined) for (const v of net.variables) v.assign(tf.mul(v, adamDecay))
          optimizers[k]!.applyGradients(grads)
          return value
        })
        // Batch means x rows, so the epoch means weigh a short last batch correctly.
        return tf.add(sums, tf.mul(tf.stack(values), rows)) as tf.Tensor1D
      })

    const history: Array<MutualEpochReport> = []
    const bestEpoch = o.students.map(() => 0)
    const bestValue = o.students.map(() => Number.NaN)
    const bestAccuracy = o.students.map(() => Number.NaN)

    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const epochStart = performance.now()
      // One order for all the students, so they see the same batches.
      const sums = await runEpoch(o, n, epoch, tf.zeros([K]) as tf.Tensor1D, (order, start, rows, b, sum) =>
        step(order, start, rows, epoch, b, sum)
      )
      const trainLosses = Array.from(sums, (s) => s / n)
      const students: Array<StudentEpoch> = []
      for (let k = 0; k < K; k++) {
        const v = val === undefined ? undefined : await evaluate(nets[k]!, val.x, val.y, evalBatch, o.signal)
        students.push({ trainLoss: trainLosses[k]!, ...(v !== undefined ? { valLoss: v.loss, valAccuracy: v.accuracy } : {}) })
        const value = v === undefined ? trainLosses[k]! : v.loss
        if (Number.isFinite(value) && (bestEpoch[k] === 0 || value < bestValue[k]!)) {
          bestEpoch[k] = epoch
          bestValue[k] = value
          bestAccuracy[k] = v?.accuracy ?? Number.NaN
          if (o.checkpoint === "best") {
            tf.dispose(best[k])
            best[k] = nets[k]!.variables.map((x) => tf.keep(tf.clone(x)))
          }
        }
      }
      const report: MutualEpochReport = { epoch, epochs: o.epochs, students, seconds: (performance.now() - epochStart) / 1000 }
      history.push(report)
      o.onEpoch?.(report)
    }

    const last = history[history.length - 1]!
    const results: Array<StudentResult> = await Promise.all(nets.map(async (net, k) => {
      const useBest = o.checkpoint === "best" && best[k] !== undefined
      return {
        weights: await (useBest ? readWeights(net, best[k]!) : networkWeights(net)),
        info: {
          checkpoint: o.checkpoint,
          epoch: useBest ? bestEpoch[k]! : o.epochs,
          epochs: o.epochs,
          bestEpoch: bestEpoch[k]!,
          selectedOn: validated ? "val_loss" : "train_loss",
          bestValue: bestValue[k]!,
          valAccuracy: useBest ? bestAccuracy[k]! : (last.students[k]!.valAccuracy ?? Number.NaN),
          backend: tf.getBackend(),
          seconds: (performance.now() - started) / 1000
        }
      }
    }))
    let bestStudent = 0
    if (validated) {
      results.forEach((r, k) => {
        if (r.info.valAccuracy > results[bestStudent]!.info.valAccuracy) bestStudent = k
      })
    }
    return { students: results, best: bestStudent, history }
  } finally {
    best.forEach((b) => tf.dispose(b))
    tf.dispose(owned)
    optimizers.forEach(disposeOptimizer)
    nets.forEach((net) => net.dispose())
  }
}
