/**
 * The training loop: the only code in Distillery that iterates over batches. It owns the data on the
 * device (uploaded once), the seeded per-epoch shuffle, the optimizer, validation, early stopping and
 * the choice of checkpoint. What is minimised is the caller's `loss` (the losses module builds it);
 * the trainer knows nothing of divergences or temperatures.
 *
 * Per step there is no readback to JS: the epoch's loss is summed in a tensor and read once per
 * epoch. Between batches the loop yields to the event loop, so an abort (Ctrl-C) is seen promptly; an
 * aborted run rejects with the signal's reason and frees every tensor it made. For a given seed and
 * backend the returned weights are bit-identical from run to run.
 */
import * as tf from "@tensorflow/tfjs"
import type { Model, Weight } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed } from "../domain/Random.js"
import type { ObjectiveSpec } from "../losses/Objective.js"
import type { ModelSpec } from "../models/ModelSpec.js"
import type { Network } from "../models/Network.js"
import { buildModel, networkFromWeights, networkWeights, readWeights } from "../models/Network.js"
import { activeNativeKernels, backendInUse } from "../backend/Backend.js"
import type { StepOptimizer } from "./FusedAdam.js"
import { makeFusedAdam } from "./FusedAdam.js"
import { makeEpochBook, nextTick, runEpoch, throwIfAborted } from "./Loop.js"
import { isWebGpuBackend } from "../backend/WebGpu.js"
import { makeWebGpuAdam } from "./WebGpuAdam.js"
import { trainMlpOnWebGpu } from "./WebGpuMlp.js"

/** Per-row teacher targets for the whole training set, aligned with its rows. */
export type TeacherTargets =
  | { readonly logits: Float32Array }
  | {
      readonly topk: {
        readonly k: number
        readonly indices: Int32Array
        readonly values: Float32Array
        readonly tailLogSumExp: Float32Array
      }
    }

/** The teacher targets of one batch, as the loss receives them. */
export type TeacherBatch =
  | { readonly logits: tf.Tensor2D }
  | { readonly topk: { readonly indices: tf.Tensor2D; readonly values: tf.Tensor2D; readonly tailLogSumExp: tf.Tensor1D } }

export type OptimizerOptions =
  | {
      readonly type: "adam"
      readonly learningRate: number
      readonly beta1?: number
      readonly beta2?: number
      readonly epsilon?: number
      /** Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): w <- w - lr * wd * w each step. */
      readonly weightDecay?: number
    }
  | {
      readonly type: "sgd"
      readonly learningRate: number
      readonly momentum?: number
      readonly nesterov?: boolean
      /** L2 penalty added to the gradient, g <- g + wd * w, as PyTorch's SGD weight_decay. */
      readonly weightDecay?: number
    }

export interface EpochReport {
  /** 1-based. */
  readonly epoch: number
  readonly epochs: number
  /** Mean of the loss over the epoch's examples. */
  readonly trainLoss: number
  /** Mean cross-entropy on the labelled validation rows. */
  readonly valLoss?: number
  readonly valAccuracy?: number
  /** Wall time of the epoch, validation included. */
  readonly seconds: number
  /** Training examples per second, validation excluded. */
  readonly examplesPerSecond: number
}

export interface BatchReport {
  readonly epoch: number
  /** Batches done in this epoch, 1-based. */
  readonly batch: number
  readonly batches: number
}

export interface TrainOptions {
  readonly spec: ModelSpec
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  /** Rows aligned; y = -1 marks an unlabelled row (the loss decides what to do with it). */
  readonly train: { readonly x: Float32Array; readonly y: Int32Array }
  readonly validation?: { readonly x: Float32Array; readonly y: Int32Array }
  /** Per-row teacher targets aligned with the train rows: dense logits (N, C) or top-k. */
  readonly teacher?: TeacherTargets
  /**
   * The objective: student logits (B, C), labels (B) int32 (-1 = unlabelled) and the batch's teacher
   * targets -> a scalar to minimise. Called inside a gradient tape and a tidy.
   */
  readonly loss: (studentLogits: tf.Tensor2D, labels: tf.Tensor1D, teacher?: TeacherBatch) => tf.Scalar
  /**
   * The objective `loss` implements, when it is a plain ObjectiveSpec; lets a backend-specific fast
   * path compute it itself.
   */
  readonly objective?: ObjectiveSpec
  readonly optimizer: OptimizerOptions
  readonly batchSize: number
  readonly epochs: number
  readonly seed: number
  /** Stop once the metric has not improved for `patience` epochs. */
  readonly earlyStopping?: { readonly patience: number; readonly metric: "val_loss" | "val_accuracy" }
  /** "best": the weights of the epoch with the best validation metric; "last": the final weights. */
  readonly checkpoint: "best" | "last"
  readonly onEpoch?: (r: EpochReport) => void
  /** Called every `onBatchEvery` batches (default 10) and after an epoch's last batch. */
  readonly onBatch?: (r: BatchReport) => void
  readonly onBatchEvery?: number
  /** Checked between batches; on abort the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal
  /** Start from these weights instead of a fresh initialisation (matched by name to `spec`). */
  readonly initial?: Pick<Model, "weights">
  /** Rows per forward pass when validating (default 512). */
  readonly evalBatchSize?: number
  /** Extra loss terms (FitNets hints, RKD; see ExtraTerms.ts), added to `loss`; absent costs nothing. */
  readonly extra?: ExtraLoss
}

/**
 * A term added to the objective each step, with trainable variables of its own (e.g. a hint
 * projection) that the optimizer updates alongside the network's (weight decay applies to the
 * network's only); the trainer neither saves nor returns them. `loss` gets the step's training
 * forward pass and the batch's int32 row indices into `train`, and is called inside the gradient tape
 * and a tidy.
 */
export interface ExtraLoss {
  readonly variables: ReadonlyArray<tf.Variable>
  readonly loss: (
    forward: { readonly logits: tf.Tensor2D; readonly features: Record<string, tf.Tensor2D> },
    batchRows: tf.Tensor1D
  ) => tf.Scalar
}

/** How the returned weights were chosen; flat, so it can be stored as a Model's `info`. */
export type TrainInfo = {
  readonly checkpoint: "best" | "last"
  /** The epoch whose weights are returned. */
  readonly epoch: number
  readonly epochs: number
  readonly epochsRun: number
  readonly bestEpoch: number
  /** The metric that picked the best epoch: val_loss, val_accuracy, or train_loss without validation. */
  readonly selectedOn: string
  readonly bestValue: number
  readonly stoppedEarly: boolean
  readonly backend: string
  readonly seconds: number
}

export interface TrainResult {
  readonly weights: Array<Weight>
  readonly info: TrainInfo
  readonly history: Array<EpochReport>
}

const check = (cond: boolean, message: () => string): void => {
  if (!cond) throw new Error(message())
}

const validate = (o: TrainOptions, d: number): void => {
  const n = o.train.y.length
  check(n > 0, () => "no training examples")
  check(o.train.x.length === n * d, () => `train.x has ${o.train.x.length} values; expected ${n} rows x ${d}`)
  check(Number.isInteger(o.batchSize) && o.batchSize >= 1, () => `batchSize must be a positive integer, got ${o.batchSize}`)
  check(Number.isInteger(o.epochs) && o.epochs >= 1, () => `epochs must be a positive integer, got ${o.epochs}`)
  if (o.validation !== undefined) {
    const m = o.validation.y.length
    check(o.validation.x.length === m * d, () => `validation.x has ${o.validation!.x.length} values; expected ${m} rows x ${d}`)
  }
  if (o.earlyStopping !== undefined) {
    check(o.earlyStopping.patience >= 1, () => `earlyStopping.patience must be at least 1, got ${o.earlyStopping!.patience}`)
  }
  const t = o.teacher
  if (t === undefined) return
  if ("logits" in t) {
    check(t.logits.length === n * o.numClasses, () => `teacher logits have ${t.logits.length} values; expected ${n} x ${o.numClasses}`)
  } else {
    const { k } = t.topk
    check(k >= 1 && k <= o.numClasses, () => `teacher top-k has k = ${k}; expected 1..${o.numClasses}`)
    check(t.topk.indices.length === n * k && t.topk.values.length === n * k, () => `teacher top-k arrays must hold ${n} x ${k} values`)
    check(t.topk.tailLogSumExp.length === n, () => `teacher tailLogSumExp has ${t.topk.tailLogSumExp.length} values; expected ${n}`)
  }
}

/** The whole teacher target set on the device, and how to take a batch of it. */
interface DeviceTeacher {
  readonly tensors: ReadonlyArray<tf.Tensor>
  readonly gather: (idx: tf.Tensor1D) => TeacherBatch
}

const uploadTeacher = (t: TeacherTargets, n: number, numClasses: number): DeviceTeacher => {
  if ("logits" in t) {
    const logits = tf.tensor2d(t.logits, [n, numClasses])
    return { tensors: [logits], gather: (idx) => ({ logits: tf.gather(logits, idx) }) }
  }
  const { k } = t.topk
  const indices = tf.tensor2d(t.topk.indices, [n, k], "int32")
  const values = tf.tensor2d(t.topk.values, [n, k])
  const tail = tf.tensor1d(t.topk.tailLogSumExp)
  return {
    tensors: [indices, values, tail],
    gather: (idx) => ({
      topk: { indices: tf.gather(indices, idx), values: tf.gather(values, idx), tailLogSumExp: tf.gather(tail, idx) }
    })
  }
}

export const makeOptimizer = (o: OptimizerOptions): tf.Optimizer | StepOptimizer => {
  if (o.type === "adam") {
    const hyper = { learningRate: o.learningRate, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, epsilon: o.epsilon ?? 1e-7 }
    // On the native backend Adam is one native pass per variable instead of ~10 tfjs kernels.
    const native = activeNativeKernels()
    if (native !== undefined) return makeFusedAdam(native, hyper)
    // On webgpu, one dispatch per variable instead of ~14.
    if (isWebGpuBackend()) return makeWebGpuAdam(hyper)
    return tf.train.adam(hyper.learningRate, hyper.beta1, hyper.beta2, hyper.epsilon)
  }
  const momentum = o.momentum ?? 0
  return momentum > 0 ? tf.train.momentum(o.learningRate, momentum, o.nesterov ?? false) : tf.train.sgd(o.learningRate)
}

export const disposeOptimizer = (opt: tf.Optimizer | StepOptimizer): void => {
  opt.dispose()
  // MomentumOptimizer.dispose (tfjs 4.22) forgets the learning-rate scalar its SGD base keeps.
  const c = (opt as unknown as { c?: tf.Tensor }).c
  if (c !== undefined && !c.isDisposed) c.dispose()
}

/**
 * Mean cross-entropy and accuracy over the labelled rows of a split already on the device. Sums are
 * kept in a (3) tensor [ce, correct, count] and read once.
 */
export const evaluate = async (
  net: Network,
  x: tf.Tensor2D,
  y: tf.Tensor1D,
  batchSize: number,
  signal: AbortSignal | undefined
): Promise<{ loss: number; accuracy: number } | undefined> => {
  const n = y.shape[0]
  const d = x.shape[1]
  const numClasses = net.numClasses
  let sums: tf.Tensor1D = tf.zeros([3])
  try {
    for (let start = 0; start < n; start += batchSize) {
      const rows = Math.min(batchSize, n - start)
      const next = tf.tidy(() => {
        const xb = tf.slice(x, [start, 0], [rows, d])
        const yb = tf.slice(y, start, rows)
        const logits = net.forward(xb, { training: false }).logits
        const labelled = tf.cast(tf.greaterEqual(yb, 0), "float32") // (B) 1 where a label exists
        // (B) -log p(label); oneHot of a clamped -1 is masked out by `labelled`.
        const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.maximum(yb, tf.zerosLike(yb)), numClasses)), 1))
        const correct = tf.cast(tf.equal(tf.argMax(logits, 1), yb), "float32") // never equal to -1
        return tf.add(sums, tf.stack([tf.sum(tf.mul(nll, labelled)), tf.sum(correct), tf.sum(labelled)])) as tf.Tensor1D
      })
      sums.dispose()
      sums = next
      await nextTick()
      throwIfAborted(signal)
    }
    const [ce, correct, count] = (await sums.data()) as Float32Array
    return count! > 0 ? { loss: ce! / count!, accuracy: correct! / count! } : undefined
  } finally {
    sums.dispose()
  }
}

/** Trains a network from `o.spec` and returns its weights, how they were chosen, and the per-epoch history. */
export const train = async (o: TrainOptions): Promise<TrainResult> => {
  const d = featureSize(o.featureShape)
  validate(o, d)
  if (o.objective !== undefined) {
    const fast = await trainMlpOnWebGpu(o)
    if (fast !== undefined) return fast
  }
  throwIfAborted(o.signal)
  const started = performance.now()
  const n = o.train.y.length
  const evalBatch = Math.max(1, o.evalBatchSize ?? 512)
  const book = makeEpochBook(o)

  const owned: Array<tf.Tensor> = []
  const own = <T extends tf.Tensor>(t: T): T => {
    owned.push(t)
    return t
  }
  let net: Network | undefined
  let optimizer: tf.Optimizer | StepOptimizer | undefined
  let best: Array<tf.Tensor> | undefined
  try {
    net =
      o.initial !== undefined
        ? networkFromWeights(o.spec, o.featureShape, o.numClasses, o.initial.weights, o.seed)
        : buildModel(o.spec, o.featureShape, o.numClasses, o.seed)
    const variables = net.variables
    const extra = o.extra
    const trainable = extra === undefined ? variables : [...variables, ...extra.variables]
    optimizer = makeOptimizer(o.optimizer)

    // The data goes to the device once; batches are gathered from it by index.
    const xAll = own(tf.tensor2d(o.train.x, [n, d]))
    const yAll = own(tf.tensor1d(o.train.y, "int32"))
    const teacher = o.teacher === undefined ? undefined : uploadTeacher(o.teacher, n, o.numClasses)
    if (teacher !== undefined) owned.push(...teacher.tensors)
    const val =
      book.metric === "train_loss"
        ? undefined
        : {
            x: own(tf.tensor2d(o.validation!.x, [o.validation!.y.length, d])),
            y: own(tf.tensor1d(o.validation!.y, "int32"))
          }
    const wd = o.optimizer.weightDecay ?? 0
    const sgdDecay = o.optimizer.type === "sgd" && wd > 0 ? own(tf.scalar(wd)) : undefined
    const adamDecay = o.optimizer.type === "adam" && wd > 0 ? own(tf.scalar(1 - o.optimizer.learningRate * wd)) : undefined
    const opt = optimizer
    const network = net

    /** One optimisation step on rows perm[start, start + rows); returns the new running loss sum. */
    const step = (perm: tf.Tensor1D, start: number, rows: number, dropoutSeed: number, sum: tf.Scalar): tf.Scalar =>
      tf.tidy(() => {
        const idx = tf.slice(perm, start, rows)
        const xb = tf.gather(xAll, idx) // (B, D)
        const yb = tf.gather(yAll, idx) // (B) int32
        const tb = teacher?.gather(idx)
        const { value, grads } = tf.variableGrads(
          extra === undefined
            ? () => o.loss(network.forward(xb, { training: true, seed: dropoutSeed }).logits, yb, tb)
            : () => {
                const forward = network.forward(xb, { training: true, seed: dropoutSeed })
                return tf.add(o.loss(forward.logits, yb, tb), extra.loss(forward, idx)) as tf.Scalar
              },
          trainable as Array<tf.Variable>
        )
        if (sgdDecay !== undefined) {
          for (const v of variables) {
            const g = grads[v.name]
            if (g !== undefined) grads[v.name] = tf.add(g, tf.mul(v, sgdDecay))
          }
        }
        if (adamDecay !== undefined) for (const v of variables) v.assign(tf.mul(v, adamDecay))
        opt.applyGradients(grads)
        // Batch mean x rows, so the epoch mean weighs a short last batch correctly.
        return tf.add(sum, tf.mul(value, rows))
      })

    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const epochStart = performance.now()
      const [lossSum] = await runEpoch(o, n, epoch, tf.scalar(0), (order, start, rows, b, sum) =>
        step(order, start, rows, deriveSeed(o.seed, "dropout", epoch, b), sum)
      )
      const trainLoss = lossSum! / n
      const trainSeconds = (performance.now() - epochStart) / 1000
      const v = val === undefined ? undefined : await evaluate(network, val.x, val.y, evalBatch, o.signal)
      const { best: improved, stop } = book.record({
        epoch,
        trainLoss,
        ...(v !== undefined ? { validation: v } : {}),
        started: epochStart,
        trainSeconds
      })
      if (improved && o.checkpoint === "best") {
        tf.dispose(best)
        best = variables.map((x) => tf.keep(tf.clone(x)))
      }
      if (stop) break
    }

    const weights = await (book.useBest() ? readWeights(network, best!) : networkWeights(network))
    return { weights, info: book.info(backendInUse(), started), history: book.history }
  } finally {
    tf.dispose(best)
    tf.dispose(owned)
    if (optimizer !== undefined) disposeOptimizer(optimizer)
    net?.dispose()
  }
}
