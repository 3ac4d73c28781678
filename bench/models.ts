/**
 * The models the benchmark trains, as Distillery specs, with the FLOPs one training example costs.
 * FLOPs = 3 x the forward pass's 2·MACs (forward, input gradient, weight gradient), the usual count
 * (6 x weights per example for an MLP); biases, activations and the optimizer are not counted, and the
 * same count is used for every configuration, so ratios compare throughput.
 */
import type { ModelSpec } from "../src/models/ModelSpec.js"
import { transformerParameterCount } from "../src/models/Transformer.js"
import type { TransformerSpec } from "../src/models/TransformerSpec.js"
import { decodeTransformerSpec, transformerDims } from "../src/models/TransformerSpec.js"

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

/** A decoder-only language model of the speed pilot, trained on random tokens. */
export interface BenchLm {
  readonly name: string
  readonly description: string
  readonly spec: TransformerSpec
  readonly parameters: number
  /**
   * FLOPs one training token costs: 6 x the non-embedding weights plus the tied head's V·D (the
   * embedding lookup is free), plus causal attention's QKᵀ and PV, 3 x 2·2·(T/2)·D per layer at mean
   * length T/2 (Kaplan et al. 2020's count, causal).
   */
  readonly flopsPerToken: number
}

const lm = (name: string, description: string, fields: Omit<TransformerSpec, "type" | "dropout" | "tiedHead" | "ropeTheta" | "normEps">): BenchLm => {
  const spec = decodeTransformerSpec({ type: "transformer", ...fields })
  const parameters = transformerParameterCount(spec)
  const { kvHeads, headDim, mlpWidth } = transformerDims(spec)
  const D = spec.width
  const perLayer = D * spec.heads * headDim * 2 + D * kvHeads * headDim * 2 + 3 * D * mlpWidth
  const macs = spec.layers * perLayer + D * spec.vocabSize + spec.layers * 2 * (spec.context / 2) * D
  return { name, description, spec, parameters, flopsPerToken: 6 * macs }
}

/** Batch 32 x 128 tokens, vocabulary 1024 (a BPE vocabulary's size), as in the pilot. */
export const benchLms: ReadonlyArray<BenchLm> = [
  lm("lm-teacher", "decoder 4 layers, width 256, 8 heads, SwiGLU 688, vocab 1024, context 128", {
    vocabSize: 1024,
    layers: 4,
    width: 256,
    heads: 8,
    context: 128
  }),
  lm("lm-student", "decoder 4 layers, width 64, 4 heads, SwiGLU 176, vocab 1024, context 128", {
    vocabSize: 1024,
    layers: 4,
    width: 64,
    heads: 4,
    context: 128
  })
]

export const findModel = (name: string): BenchModel => {
  const m = benchModels.find((x) => x.name === name)
  if (m === undefined) throw new Error(`unknown bench model "${name}"; choose from ${benchModels.map((x) => x.name).join(", ")}`)
  return m
}

export const findLm = (name: string): BenchLm | undefined => benchLms.find((x) => x.name === name)

export const allModelNames = (): ReadonlyArray<string> => [...benchModels, ...benchLms].map((m) => m.name)
