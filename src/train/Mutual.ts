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
 * It is built from the trainer's pieces: the classifier family's set-up (Classifier.ts), the backend's
 * optimizer with weight decay (Optimizer.ts), the batch loop (Loop.ts `runEpoch`: one seeded shuffle
 * per epoch, shared by the students so they see the same batches; the loss summed on the device and
 * read once per epoch; yields and abort checks between batches), the validation score (Score.ts) and
 * the best-epoch bookkeeping (Loop.ts `makeBestTracker`, `makeBestWeights`). Each student's dropout
 * masks have their own stream, and every tensor is freed whatever happens. Validation measures each
 * student after every epoch; "best" keeps each student's weights from its own best val_loss epoch.
 */
import * as tf from "@tensorflow/tfjs"
import { backendCapabilities } from "../backend/Capabilities.js"
import type { Weight } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed } from "../domain/Random.js"
import type { ObjectiveSpec } from "../losses/Objective.js"
import { divergencePerExample, hardLabelCrossEntropy, temperatureFactor } from "../losses/Objective.js"
import type { ModelSpec } from "../models/ModelSpec.js"
import { readWeights } from "../models/Network.js"
import { classifier } from "./Classifier.js"
import type { LabelledRows, LoopOptions } from "./Contract.js"
import type { BestTracker, BestWeights } from "./Loop.js"
import { makeBestTracker, makeBestWeights, runEpoch, throwIfAborted } from "./Loop.js"
import type { TrainableModel } from "./ModelFamily.js"
import type { Updater } from "./Optimizer.js"
import { makeUpdater } from "./Optimizer.js"
import { evaluate } from "./Score.js"
import { validateRows } from "./Trainer.js"

export interface MutualOptions extends Omit<LoopOptions, "onEpoch" | "earlyStopping"> {
  /** One spec per student, K >= 2; student k is initialised from deriveSeed(seed, "student", k). */
  readonly students: ReadonlyArray<ModelSpec>
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  /** Rows aligned; y = -1 marks an unlabelled row (no CE; the mimicry term still applies). */
  readonly train: LabelledRows
  readonly validation?: LabelledRows
  /** Weight of the mean KL to the other students. */
  readonly weight: number
  /** Temperature of the KL term (1 in the paper). */
  readonly temperature: number
  readonly onEpoch?: (r: MutualEpochReport) => void
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
  if (K < 2) throw new Error(`mutual learning needs at least 2 students, got ${K}`)
  validateRows(o, featureSize(o.featureShape))
  throwIfAborted(o.signal)
  const started = performance.now()
  const n = o.train.y.length
  const evalBatch = Math.max(1, o.evalBatchSize ?? 512)
  const validated = o.validation !== undefined && o.validation.y.length > 0
  const backend = backendCapabilities()
  const family = classifier(o.featureShape, o.numClasses)
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
  const nets: Array<TrainableModel<tf.Tensor2D, tf.Tensor2D>> = []
  const updaters: Array<Updater> = []
  const best: Array<BestWeights> = []
  try {
    o.students.forEach((spec, k) => nets.push(family.build(spec, deriveSeed(o.seed, "student", k))))
    nets.forEach((net) => best.push(makeBestWeights(net.variables)))
    o.students.forEach(() => updaters.push(makeUpdater(o.optimizer, backend)))
    const data = family.upload(o.train)
    owned.push(data.inputs, data.labels)
    const val = validated ? family.upload(o.validation!) : undefined
    if (val !== undefined) owned.push(val.inputs, val.labels)

    /** One step of every student on rows perm[start, start + rows); returns the new (K) loss sums. */
    const step = (perm: tf.Tensor1D, start: number, rows: number, epoch: number, b: number, sums: tf.Tensor1D): tf.Tensor1D =>
      tf.tidy(() => {
        const idx = tf.slice(perm, start, rows)
        const xb = tf.gather(data.inputs, idx) // (B, D)
        const yb = tf.gather(data.labels, idx) // (B) int32
        const seeds = nets.map((_, k) => deriveSeed(o.seed, "dropout", k, epoch, b))
        // (B, C) each student's logits with the dropout masks of its own step below: the others' targets
        const targets = nets.map((net, k) => net.forward(xb, { training: true, seed: seeds[k]! }).logits)
        const values = nets.map((net, k) =>
          updaters[k]!.minimize(
            () => {
              const logits = net.forward(xb, { training: true, seed: seeds[k]! }).logits // (B, C)
              const ce = hardLabelCrossEntropy(logits, yb)
              // (K - 1) mean_b KL(q_l,T || q_k,T) for each other student l
              const kls = targets.flatMap((t, l) => (l === k ? [] : [tf.mean(divergencePerExample(klSpec, logits, { logits: t }))]))
              return tf.add(ce, tf.mul(tf.mean(tf.stack(kls)), o.weight * klFactor)) as tf.Scalar
            },
            net.variables,
            net.variables
          )
        )
        // Batch means x rows, so the epoch means weigh a short last batch correctly.
        return tf.add(sums, tf.mul(tf.stack(values), rows)) as tf.Tensor1D
      })

    const history: Array<MutualEpochReport> = []
    // Each student's best epoch by val_loss (train loss without validation), lower is better.
    const trackers: Array<BestTracker> = nets.map(() => makeBestTracker(false))
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
        const v = val === undefined ? undefined : await evaluate(nets[k]!, val.inputs, val.labels, evalBatch, o.signal)
        students.push({ trainLoss: trainLosses[k]!, ...(v !== undefined ? { valLoss: v.loss, valAccuracy: v.accuracy } : {}) })
        if (trackers[k]!.record(epoch, v === undefined ? trainLosses[k]! : v.loss)) {
          bestAccuracy[k] = v?.accuracy ?? Number.NaN
          if (o.checkpoint === "best") best[k]!.save()
        }
      }
      const report: MutualEpochReport = { epoch, epochs: o.epochs, students, seconds: (performance.now() - epochStart) / 1000 }
      history.push(report)
      o.onEpoch?.(report)
    }

    const last = history[history.length - 1]!
    const results: Array<StudentResult> = await Promise.all(
      nets.map(async (net, k) => {
        const saved = best[k]!.saved()
        const useBest = o.checkpoint === "best" && saved !== undefined
        return {
          weights: await readWeights(net, useBest ? saved : net.variables),
          info: {
            checkpoint: o.checkpoint,
            epoch: useBest ? trackers[k]!.epoch() : o.epochs,
            epochs: o.epochs,
            bestEpoch: trackers[k]!.epoch(),
            selectedOn: validated ? "val_loss" : "train_loss",
            bestValue: trackers[k]!.value(),
            valAccuracy: useBest ? bestAccuracy[k]! : (last.students[k]!.valAccuracy ?? Number.NaN),
            backend: backend.name,
            seconds: (performance.now() - started) / 1000
          }
        }
      })
    )
    let bestStudent = 0
    if (validated) {
      results.forEach((r, k) => {
        if (r.info.valAccuracy > results[bestStudent]!.info.valAccuracy) bestStudent = k
      })
    }
    return { students: results, best: bestStudent, history }
  } finally {
    best.forEach((b) => b.dispose())
    tf.dispose(owned)
    updaters.forEach((u) => u.dispose())
    nets.forEach((net) => net.dispose())
  }
}
