/**
 * The models the benchmark trains, as Distillery specs, with the FLOPs one training example costs.
 * FLOPs = 3 x the forward pass's 2·MACs (forward, input gradient, weight gradient), the usual count
 * (6 x weights per example for an MLP); biases, activations and the optimizer are not counted, and the
 * same count is used for every configuration, so ratios compare throughput.
 */
import type { ModelSpec } from "../src/models/ModelSpec.js"

export interface BenchModel {
  readonly name: string
  readonly description: string
  readonly spec: ModelSpec
  readonly flopsPerExample: number
  /** Examples (1 epoch) for the slow plain-tfjs configurations, when fewer than --slow-examples. */
  readonly slowExamples?: number
}

const mlpFlops = (sizes: ReadonlyArray<number>): number => {
  let macs = 0
  for (let i = 1; i < sizes.length; i++) macs += sizes[i - 1]! * sizes[i]!
  return 6 * macs
}

/** 3x3 same convs, each followed by 2x2 max pooling, then dense layers, on 28x28x1 images. */
const cnnFlops = (channels: ReadonlyArray<number>, dense: ReadonlyArray<number>, classes: number): number => {
  let macs = 0
  let [h, w, c] = [28, 28, 1]
  for (const out of channels) {
    macs += h * w * 9 * c * out
    h = Math.floor(h / 2)
    w = Math.floor(w / 2)
    c = out
  }
  const sizes = [h * w * c, ...dense, classes]
  for (let i = 1; i < sizes.length; i++) macs += sizes[i - 1]! * sizes[i]!
  return 6 * macs
}

export const benchModels: ReadonlyArray<BenchModel> = [
  {
    name: "mlp",
    description: "MLP 784-512-512-10",
    spec: { type: "mlp", hidden: [512, 512], activation: "relu", dropout: 0, inputDropout: 0 },
    flopsPerExample: mlpFlops([784, 512, 512, 10])
  },
  {
    name: "student",
    description: "student MLP 784-128-128-10 (pipelines/mnist-kd.yaml)",
    spec: { type: "mlp", hidden: [128, 128], activation: "relu", dropout: 0, inputDropout: 0 },
    flopsPerExample: mlpFlops([784, 128, 128, 10])
  },
  {
    name: "teacher",
    description: "teacher MLP 784-800-800-10, dropout 0.5, input dropout 0.2 (pipelines/mnist-kd.yaml)",
    spec: { type: "mlp", hidden: [800, 800], activation: "relu", dropout: 0.5, inputDropout: 0.2 },
    flopsPerExample: mlpFlops([784, 800, 800, 10])
  },
  {
    name: "cnn",
    description: "CNN conv3x3(16)-pool-conv3x3(32)-pool-dense 128-10",
    spec: { type: "cnn", channels: [16, 32], dense: [128], activation: "relu", dropout: 0, imageShape: [28, 28, 1] },
    flopsPerExample: cnnFlops([16, 32], [128], 10),
    // tfjs cpu trains it at ~6 examples/s
    slowExamples: 256
  }
]

export const findModel = (name: string): BenchModel => {
  const m = benchModels.find((x) => x.name === name)
  if (m === undefined) throw new Error(`unknown bench model "${name}"; choose from ${benchModels.map((x) => x.name).join(", ")}`)
  return m
}
