/**
 * The values that flow along a pipeline's edges. Each port of a node kind is typed by one of these
 * `PortType`s; the executor checks wiring against them before anything runs. Artifacts hold their bulk
 * data in typed arrays so that the artifact codec stores them as raw bytes.
 */

/** The kinds of value a port can carry. */
export const PortTypes = ["Dataset", "SoftLabels", "Model", "Metrics", "Features"] as const
export type PortType = (typeof PortTypes)[number]

/** One split of a dataset: N examples, features row-major (N, ...featureShape), labels (N). */
export interface Split {
  /** (N * prod(featureShape)) features, row-major. */
  readonly x: Float32Array
  /** (N) class labels; -1 marks an unlabelled example. */
  readonly y: Int32Array
  /** (N) stable example ids (the index in the source), so results can be joined across nodes. */
  readonly ids: Int32Array
}

export type SplitName = "train" | "validation" | "test"
export const SplitNames: ReadonlyArray<SplitName> = ["train", "validation", "test"]

export interface Dataset {
  readonly _tag: "Dataset"
  readonly name: string
  /** Shape of one example's features, e.g. [784] or [28, 28, 1]. */
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  readonly classNames: ReadonlyArray<string>
  readonly splits: { readonly train: Split; readonly validation: Split; readonly test: Split }
}

/**
 * A teacher's outputs over a transfer set, at temperature 1, so one generation serves every temperature.
 * Dense: `logits` is (N, C). Sparse (top-k): `topk` holds the k largest logits per example and the
 * log-sum-exp of the remaining C - k logits, from which the divergences rebuild a tail bucket.
 */
export interface SoftLabels {
  readonly _tag: "SoftLabels"
  /** Which split of the source dataset these examples come from. */
  readonly split: SplitName
  readonly numClasses: number
  /** (N) example ids in the source dataset's split. */
  readonly ids: Int32Array
  /** (N) ground-truth labels (-1 when unknown). */
  readonly labels: Int32Array
  /** (N, C) teacher logits at T = 1; absent when only the top-k are kept. */
  readonly logits?: Float32Array
  readonly topk?: {
    readonly k: number
    /** (N, k) class indices of the k largest logits, largest first. */
    readonly indices: Int32Array
    /** (N, k) their logits at T = 1. */
    readonly values: Float32Array
    /** (N) log-sum-exp at T = 1 of the C - k logits left out (-Infinity when k = C). */
    readonly tailLogSumExp: Float32Array
  }
  /** Names of the teachers that produced these outputs (several after an ensemble). */
  readonly teachers: ReadonlyArray<string>
}

/** One tensor of a trained model. */
export interface Weight {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly values: Float32Array
}

export interface Model {
  readonly _tag: "Model"
  /** The model spec it was built from (see models/ModelSpec.ts), as plain JSON. */
  readonly spec: unknown
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  readonly weights: ReadonlyArray<Weight>
  /** How the returned weights were chosen, e.g. { checkpoint: "best", epoch: 7, epochs: 12 }. */
  readonly info: Readonly<Record<string, string | number | boolean>>
}

export interface Metrics {
  readonly _tag: "Metrics"
  /** The node whose model was evaluated. */
  readonly subject: string
  readonly values: Readonly<Record<string, number>>
}

/** A teacher layer's activations over a transfer set (FitNets hints). */
export interface Features {
  readonly _tag: "Features"
  readonly split: SplitName
  readonly layer: string
  /** The node id of the model whose layer this is (absent in artifacts cached before it was recorded). */
  readonly model?: string
  /** (N) example ids. */
  readonly ids: Int32Array
  /** Shape of one example's features. */
  readonly shape: ReadonlyArray<number>
  /** (N * prod(shape)) activations, row-major. */
  readonly values: Float32Array
}

export interface PortValues {
  readonly Dataset: Dataset
  readonly SoftLabels: SoftLabels
  readonly Model: Model
  readonly Metrics: Metrics
  readonly Features: Features
}

export type Artifact = PortValues[PortType]

export const featureSize = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

export const splitSize = (split: Split): number => split.y.length

/** Number of trainable parameters of a model artifact. */
export const parameterCount = (model: Pick<Model, "weights">): number =>
  model.weights.reduce((total, w) => total + w.values.length, 0)
