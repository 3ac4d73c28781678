/**
 * The trainer: `train` implements the training contract (Contract.ts) for the classifier family. It
 * checks the options, lets the backend's fused step take the run when it covers it (FusedMlp.ts),
 * and otherwise runs the generic loop, `fit`: data on the device (uploaded once), the seeded
 * per-epoch shuffle, the optimizer the backend supplies, validation, early stopping and the choice
 * of checkpoint, over any model family (ModelFamily.ts). What is minimised is the caller's `loss`
 * (the losses module builds it); the trainer knows nothing of divergences or temperatures.
 *
 * Per step there is no readback to JS: the epoch's loss is summed in a tensor and read once per
 * epoch. Between batches the loop yields to the event loop, so an abort (Ctrl-C) is seen promptly; an
 * aborted run rejects with the signal's reason and frees every tensor it made. For a given seed and
 * backend the returned weights are bit-identical from run to run.
 */
import * as tf from "@tensorflow/tfjs"
import type { BackendCapabilities } from "../backend/Capabilities.js"
import { backendCapabilities } from "../backend/Capabilities.js"
import type { Model } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed } from "../domain/Random.js"
import { readWeights } from "../models/Network.js"
import { classifier } from "./Classifier.js"
import type { ExtraLoss, LoopOptions, TeacherBatch, TeacherTargets, TrainOptions, TrainResult } from "./Contract.js"
import { trainFusedMlp } from "./FusedMlp.js"
import { makeBestWeights, makeEpochBook, runEpoch, runEpochs, throwIfAborted } from "./Loop.js"
import type { ModelFamily } from "./ModelFamily.js"
import type { Updater } from "./Optimizer.js"
import { makeUpdater } from "./Optimizer.js"
import { evaluate } from "./Score.js"

const check = (cond: boolean, message: () => string): void => {
  if (!cond) throw new Error(message())
}

/** Checks the rows (d features each) and the batching; throws naming what is wrong. */
export const validateRows = (
  o: Pick<TrainOptions, "train" | "validation" | "batchSize" | "epochs">,
  d: number
): void => {
  const n = o.train.y.length
  check(n > 0, () => "no training examples")
  check(o.train.x.length === n * d, () => `train.x has ${o.train.x.length} values; expected ${n} rows x ${d}`)
  check(Number.isInteger(o.batchSize) && o.batchSize >= 1, () => `batchSize must be a positive integer, got ${o.batchSize}`)
  check(Number.isInteger(o.epochs) && o.epochs >= 1, () => `epochs must be a positive integer, got ${o.epochs}`)
  if (o.validation !== undefined) {
    const m = o.validation.y.length
    check(o.validation.x.length === m * d, () => `validation.x has ${o.validation!.x.length} values; expected ${m} rows x ${d}`)
  }
}

const validate = (o: TrainOptions, d: number): void => {
  validateRows(o, d)
  const n = o.train.y.length
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

const uploadTeacher = (t: TeacherTargets, n: number): DeviceTeacher => {
  if ("logits" in t) {
    const logits = tf.tensor2d(t.logits, [n, t.logits.length / n])
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

/** What the generic loop takes for a model family: the loop's options, a spec, its data and its loss. */
export interface FitOptions<Spec, Data, L extends tf.Tensor, Y extends tf.Tensor> extends LoopOptions {
  readonly spec: Spec
  readonly train: Data
  readonly validation?: Data
  /** Per-row teacher targets aligned with the train rows. */
  readonly teacher?: TeacherTargets
  /** The objective: the batch's logits, labels and teacher targets -> a scalar. Inside a gradient tape and a tidy. */
  readonly loss: (logits: L, labels: Y, teacher?: TeacherBatch) => tf.Scalar
  readonly initial?: Pick<Model, "weights">
  readonly extra?: ExtraLoss
}

/**
 * The generic loop: trains a model of `family` with tfjs kernels and the backend's optimizer, and
 * returns its weights, how they were chosen, and the per-epoch history.
 */
export const fit = async <Spec, Data, X extends tf.Tensor, L extends tf.Tensor, Y extends tf.Tensor>(
  family: ModelFamily<Spec, Data, X, L, Y>,
  o: FitOptions<Spec, Data, L, Y>,
  backend: BackendCapabilities
): Promise<TrainResult> => {
  throwIfAborted(o.signal)
  const started = performance.now()
  const n = family.rows(o.train)
  const evalBatch = Math.max(1, o.evalBatchSize ?? 512)
  const validated = o.validation !== undefined && family.rows(o.validation) > 0
  const book = makeEpochBook(o, n, validated)

  const owned: Array<tf.Tensor> = []
  const own = <T extends { readonly inputs: tf.Tensor; readonly labels: tf.Tensor }>(rows: T): T => {
    owned.push(rows.inputs, rows.labels)
    return rows
  }
  const model = family.build(o.spec, o.seed, o.initial?.weights)
  const best = makeBestWeights(model.variables)
  let updater: Updater | undefined
  try {
    const variables = model.variables
    const extra = o.extra
    const trainable = extra === undefined ? variables : [...variables, ...extra.variables]
    updater = makeUpdater(o.optimizer, backend)
    const update = updater

    // The data goes to the device once; batches are gathered from it by index.
    const data = own(family.upload(o.train))
    const teacher = o.teacher === undefined ? undefined : uploadTeacher(o.teacher, n)
    if (teacher !== undefined) owned.push(...teacher.tensors)
    const val = validated ? own(family.upload(o.validation!)) : undefined

    /** One optimisation step on rows perm[start, start + rows); returns the new running loss sum. */
    const step = (perm: tf.Tensor1D, start: number, rows: number, dropoutSeed: number, sum: tf.Scalar): tf.Scalar =>
      tf.tidy(() => {
        const idx = tf.slice(perm, start, rows)
        const xb = tf.gather(data.inputs, idx) as X // (B, ...)
        const yb = tf.gather(data.labels, idx) as Y // (B, ...) int32
        const tb = teacher?.gather(idx)
        const value = update.minimize(
          extra === undefined
            ? () => o.loss(model.forward(xb, { training: true, seed: dropoutSeed }).logits, yb, tb)
            : () => {
                const forward = model.forward(xb, { training: true, seed: dropoutSeed })
                return tf.add(o.loss(forward.logits, yb, tb), extra.loss(forward, idx)) as tf.Scalar
              },
          trainable,
          variables
        )
        // Batch mean x rows, so the epoch mean weighs a short last batch correctly.
        return tf.add(sum, tf.mul(value, rows))
      })

    await runEpochs(o, n, book, {
      train: async (epoch) => {
        const [lossSum] = await runEpoch(o, n, epoch, tf.scalar(0), (order, start, rows, b, sum) =>
          step(order, start, rows, deriveSeed(o.seed, "dropout", epoch, b), sum)
        )
        return lossSum!
      },
      validate: () => evaluate(model, val!.inputs, val!.labels, evalBatch, o.signal),
      saveBest: best.save
    })

    const weights = await readWeights(model, book.useBest() ? best.saved()! : variables)
    return { weights, info: book.info(backend.name, started), history: book.history }
  } finally {
    best.dispose()
    tf.dispose(owned)
    updater?.dispose()
    model.dispose()
  }
}

/** Trains a network from `o.spec` and returns its weights, how they were chosen, and the per-epoch history. */
export const train = async (o: TrainOptions): Promise<TrainResult> => {
  validate(o, featureSize(o.featureShape))
  const backend = backendCapabilities()
  return (await trainFusedMlp(o, backend)) ?? fit(classifier(o.featureShape, o.numClasses), o, backend)
}
