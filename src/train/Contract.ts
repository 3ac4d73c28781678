/**
 * The training contract: what a caller (the train node, bench/, the tests) gives the trainer and gets
 * back. `LoopOptions` is what any model family's loop takes (optimizer, batching, epochs, seed,
 * stopping, checkpoint, callbacks, abort); `TrainOptions` adds the classifier's data, model and
 * objective. Types only: Trainer.ts `train` implements the contract.
 */
import type * as tf from "@tensorflow/tfjs"
import type { Model, Weight } from "../domain/Artifact.js"
import type { ObjectiveSpec } from "../losses/Objective.js"
import type { ModelSpec } from "../models/ModelSpec.js"

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

/** What every training loop takes, whatever the model family. */
export interface LoopOptions {
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
  /** Rows per forward pass when validating (default 512). */
  readonly evalBatchSize?: number
}

/** Rows aligned; y = -1 marks an unlabelled row. */
export interface LabelledRows {
  readonly x: Float32Array
  readonly y: Int32Array
}

export interface TrainOptions extends LoopOptions {
  readonly spec: ModelSpec
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  /** Rows aligned; y = -1 marks an unlabelled row (the loss decides what to do with it). */
  readonly train: LabelledRows
  readonly validation?: LabelledRows
  /** Per-row teacher targets aligned with the train rows: dense logits (N, C) or top-k. */
  readonly teacher?: TeacherTargets
  /**
   * The objective: student logits (B, C), labels (B) int32 (-1 = unlabelled) and the batch's teacher
   * targets -> a scalar to minimise. Called inside a gradient tape and a tidy.
   */
  readonly loss: (studentLogits: tf.Tensor2D, labels: tf.Tensor1D, teacher?: TeacherBatch) => tf.Scalar
  /**
   * The objective `loss` implements, when it is a plain ObjectiveSpec; lets a backend's fused step
   * compute it itself.
   */
  readonly objective?: ObjectiveSpec
  /** Start from these weights instead of a fresh initialisation (matched by name to `spec`). */
  readonly initial?: Pick<Model, "weights">
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
    forward: { readonly logits: tf.Tensor; readonly features: Record<string, tf.Tensor2D> },
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
