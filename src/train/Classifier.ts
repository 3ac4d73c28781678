/**
 * The classifier family: the MLP and CNN networks of models/Network.ts on flat feature rows (N, D)
 * with one int32 class label per row, as the train and mutual nodes use them.
 */
import * as tf from "@tensorflow/tfjs"
import { featureSize } from "../domain/Artifact.js"
import type { ModelSpec } from "../models/ModelSpec.js"
import { buildModel, networkFromWeights } from "../models/Network.js"
import type { LabelledRows } from "./Contract.js"
import type { ModelFamily } from "./ModelFamily.js"

export type ClassifierFamily = ModelFamily<ModelSpec, LabelledRows, tf.Tensor2D, tf.Tensor2D, tf.Tensor1D>

export const classifier = (featureShape: ReadonlyArray<number>, numClasses: number): ClassifierFamily => {
  const d = featureSize(featureShape)
  return {
    build: (spec, seed, initial) =>
      initial !== undefined
        ? networkFromWeights(spec, featureShape, numClasses, initial, seed)
        : buildModel(spec, featureShape, numClasses, seed),
    rows: (data) => data.y.length,
    upload: (data) => ({ inputs: tf.tensor2d(data.x, [data.y.length, d]), labels: tf.tensor1d(data.y, "int32") })
  }
}
