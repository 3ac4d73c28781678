/**
 * What the training loop needs of a kind of model, so that a new family (a transformer LM next) is a
 * new implementation of `ModelFamily` rather than branches in the loop: how to build a model (fresh
 * or from weights), its forward pass to logits, and how its rows go to the device as the inputs and
 * labels the loss takes. Classifier.ts is the MLP/CNN family.
 */
import type * as tf from "@tensorflow/tfjs"
import type { Weight } from "../domain/Artifact.js"
import type { ForwardOptions } from "../models/Network.js"

/** A model being trained: its variables, its forward pass, its weights' names. */
export interface TrainableModel<X extends tf.Tensor = tf.Tensor, L extends tf.Tensor = tf.Tensor> {
  /** Trainable variables, in the order of `weightNames`. */
  readonly variables: ReadonlyArray<tf.Variable>
  /** Stable names of `variables`, as the Model artifact stores them. */
  readonly weightNames: ReadonlyArray<string>
  /** x: (B, ...) inputs -> (B, ..., C) logits and named (B, D) layer activations. Call inside a tidy. */
  forward(x: X, opts: ForwardOptions): { readonly logits: L; readonly features: Record<string, tf.Tensor2D> }
  dispose(): void
}

/** A split on the device: the model's inputs (N, ...) and int32 labels (N, ...), -1 where there is none. */
export interface DeviceRows<X extends tf.Tensor, Y extends tf.Tensor> {
  readonly inputs: X
  readonly labels: Y
}

/**
 * A family of models trained on one kind of data: `Spec` describes a model, `Data` a split as the
 * caller holds it, X the model's input batch, L its logits, Y its labels.
 */
export interface ModelFamily<Spec, Data, X extends tf.Tensor, L extends tf.Tensor, Y extends tf.Tensor> {
  /** A fresh model seeded by `seed`, or one holding `initial` (matched by name); `seed` also seeds its dropout. */
  readonly build: (spec: Spec, seed: number, initial?: ReadonlyArray<Weight>) => TrainableModel<X, L>
  /** Rows in a split. */
  readonly rows: (data: Data) => number
  /** Puts a split on the device (once; the loop gathers batches from it by row index). */
  readonly upload: (data: Data) => DeviceRows<X, Y>
}
