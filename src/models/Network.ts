/**
 * Turns a `ModelSpec` into plain tfjs variables and a forward function: no tf.layers, no model.fit, so
 * the trainer owns the loop and every random draw comes from a seed. A `Network` is the trainer's
 * `TrainableModel` for the classifier family (train/Classifier.ts). `forward` also returns the
 * activations of each named layer, flattened to (B, D), for feature-based distillation (FitNets
 * hints, relational KD).
 *
 * Weight names are stable and make up the Model artifact: `hidden1/kernel`, `hidden1/bias`, ...,
 * `conv1/kernel` (3, 3, Cin, Cout), ..., `output/kernel`, `output/bias`.
 */
import * as tf from "@tensorflow/tfjs"
import type { Model, Weight } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed, makeRng } from "../domain/Random.js"
import type { Activation, CnnSpec, MlpSpec, ModelSpec } from "./ModelSpec.js"
import { decodeModelSpec } from "./ModelSpec.js"

export interface ForwardOptions {
  /** Dropout is active only when training. */
  readonly training: boolean
  /** Seeds this call's dropout masks; without it, masks come from the network's own seeded stream. */
  readonly seed?: number
}

export interface ForwardResult {
  /** (B, C) unnormalised class scores. */
  readonly logits: tf.Tensor2D
  /** Layer name -> (B, D) activations of that layer (after activation and pooling, before dropout). */
  readonly features: Record<string, tf.Tensor2D>
}

export interface Network {
  readonly spec: ModelSpec
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  /** Trainable variables, in the order of `weightNames`. */
  readonly variables: ReadonlyArray<tf.Variable>
  /** Stable names of `variables` (tfjs variable names must be globally unique, so they are not used). */
  readonly weightNames: ReadonlyArray<string>
  /** Names of the layers whose activations `forward` returns in `features`, input to output. */
  readonly layerNames: ReadonlyArray<string>
  /** x: (B, prod(featureShape)). Call inside tf.tidy (or dispose the results). */
  forward(x: tf.Tensor2D, opts: ForwardOptions): ForwardResult
  dispose(): void
}

/** One tensor of a network, before it has values. */
export interface WeightSpec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  /** He (Kaiming) uniform for ReLU-like layers, Glorot uniform for saturating ones and the output. */
  readonly init: "he" | "glorot" | "zeros"
  readonly fanIn: number
  readonly fanOut: number
}

interface Layout {
  readonly weights: ReadonlyArray<WeightSpec>
  readonly layerNames: ReadonlyArray<string>
}

const reluLike = (a: Activation): boolean => a === "relu" || a === "gelu" || a === "elu"

const dense = (name: string, fanIn: number, fanOut: number, init: "he" | "glorot"): Array<WeightSpec> => [
  { name: `${name}/kernel`, shape: [fanIn, fanOut], init, fanIn, fanOut },
  { name: `${name}/bias`, shape: [fanOut], init: "zeros", fanIn, fanOut }
]

const mlpLayout = (spec: MlpSpec, inputSize: number, numClasses: number): Layout => {
  const init = reluLike(spec.activation) ? "he" : "glorot"
  const weights: Array<WeightSpec> = []
  let prev = inputSize
  spec.hidden.forEach((h, i) => {
    weights.push(...dense(`hidden${i + 1}`, prev, h, init))
    prev = h
  })
  weights.push(...dense("output", prev, numClasses, "glorot"))
  return { weights, layerNames: [...spec.hidden.map((_, i) => `hidden${i + 1}`), "penultimate"] }
}

/** Spatial size after each 3x3 same-padded conv and 2x2 / stride 2 max pool (floor, as in PyTorch). */
const cnnShapes = (spec: CnnSpec, inputSize: number): ReadonlyArray<readonly [number, number, number]> => {
  const [h0, w0, c0] = spec.imageShape
  if (h0 * w0 * c0 !== inputSize) {
    throw new Error(
      `cnn imageShape [${spec.imageShape.join(", ")}] has ${h0 * w0 * c0} values but the features have ${inputSize}`
    )
  }
  const shapes: Array<readonly [number, number, number]> = []
  let [h, w] = [h0, w0]
  for (const c of spec.channels) {
    h = Math.floor(h / 2)
    w = Math.floor(w / 2)
    if (h < 1 || w < 1) {
      throw new Error(
        `cnn with ${spec.channels.length} conv layers pools a ${h0}x${w0} image to nothing; use at most ` +
          `${Math.floor(Math.log2(Math.min(h0, w0)))} entries in channels`
      )
    }
    shapes.push([h, w, c])
  }
  return shapes
}

const cnnLayout = (spec: CnnSpec, inputSize: number, numClasses: number): Layout => {
  const init = reluLike(spec.activation) ? "he" : "glorot"
  const weights: Array<WeightSpec> = []
  const shapes = cnnShapes(spec, inputSize)
  let cin = spec.imageShape[2]
  spec.channels.forEach((cout, i) => {
    weights.push(
      { name: `conv${i + 1}/kernel`, shape: [3, 3, cin, cout], init, fanIn: 9 * cin, fanOut: 9 * cout },
      { name: `conv${i + 1}/bias`, shape: [cout], init: "zeros", fanIn: 9 * cin, fanOut: 9 * cout }
    )
    cin = cout
  })
  const last = shapes[shapes.length - 1]
  let prev = last === undefined ? inputSize : last[0] * last[1] * last[2]
  spec.dense.forEach((h, i) => {
    weights.push(...dense(`hidden${i + 1}`, prev, h, init))
    prev = h
  })
  weights.push(...dense("output", prev, numClasses, "glorot"))
  return {
    weights,
    layerNames: [
      ...spec.channels.map((_, i) => `conv${i + 1}`),
      ...spec.dense.map((_, i) => `hidden${i + 1}`),
      "penultimate"
    ]
  }
}

const layout = (spec: ModelSpec, featureShape: ReadonlyArray<number>, numClasses: number): Layout => {
  const inputSize = featureSize(featureShape)
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`numClasses must be a positive integer, got ${numClasses}`)
  return spec.type === "mlp" ? mlpLayout(spec, inputSize, numClasses) : cnnLayout(spec, inputSize, numClasses)
}

/** The tensors a spec builds, in variable order. */
export const weightSpecs = (
  spec: ModelSpec,
  featureShape: ReadonlyArray<number>,
  numClasses: number
): ReadonlyArray<WeightSpec> => layout(spec, featureShape, numClasses).weights

/** Trainable parameters of a network, or of the network a spec would build. */
export function parameterCount(net: Network): number
export function parameterCount(spec: ModelSpec, featureShape: ReadonlyArray<number>, numClasses: number): number
export function parameterCount(
  specOrNet: ModelSpec | Network,
  featureShape?: ReadonlyArray<number>,
  numClasses?: number
): number {
  if ("variables" in specOrNet) return specOrNet.variables.reduce((n, v) => n + v.size, 0)
  if (featureShape === undefined || numClasses === undefined) {
    throw new Error("parameterCount(spec, featureShape, numClasses) needs the feature shape and class count")
  }
  return weightSpecs(specOrNet, featureShape, numClasses).reduce((n, w) => n + featureSize(w.shape), 0)
}

/** Seeded initial values: U(-a, a) with a = sqrt(6 / fanIn) (He) or sqrt(6 / (fanIn + fanOut)) (Glorot). */
const initialValues = (w: WeightSpec, seed: number): Float32Array => {
  const values = new Float32Array(featureSize(w.shape))
  if (w.init === "zeros") return values
  const limit = w.init === "he" ? Math.sqrt(6 / w.fanIn) : Math.sqrt(6 / (w.fanIn + w.fanOut))
  // Each tensor has its own stream, so adding a layer does not change the others' initial values.
  const rng = makeRng(deriveSeed(seed, "init", w.name))
  for (let i = 0; i < values.length; i++) values[i] = (2 * rng.next() - 1) * limit
  return values
}

const activate = (x: tf.Tensor, a: Activation): tf.Tensor => {
  switch (a) {
    case "relu":
      return tf.relu(x)
    case "tanh":
      return tf.tanh(x)
    case "sigmoid":
      return tf.sigmoid(x)
    case "elu":
      return tf.elu(x)
    case "gelu":
      // Exact GELU, x·Φ(x) = x/2 · (1 + erf(x/√2)), as PyTorch's default.
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1))
  }
}

/** Activations the fused kernels apply in the same pass (inference only: their gradients are partial). */
const fusable = (a: Activation): "relu" | "sigmoid" | "elu" | undefined =>
  a === "relu" || a === "sigmoid" || a === "elu" ? a : undefined

/** One trainable variable per spec, in order; on a failure the ones already made are freed. */
export const makeVariables = <W extends { readonly shape: ReadonlyArray<number> }>(
  specs: ReadonlyArray<W>,
  values: (w: W) => Float32Array
): Array<tf.Variable> => {
  const variables: Array<tf.Variable> = []
  try {
    for (const w of specs) {
      const v = values(w)
      variables.push(tf.tidy(() => tf.variable(tf.tensor(v, [...w.shape], "float32"), true)))
    }
  } catch (e) {
    tf.dispose(variables)
    throw e
  }
  return variables
}

/**
 * The given weights by name, after checking that each expected one is present with its shape; throws
 * one error listing every problem, saying what the weights were meant to fit (`what`).
 */
export const matchWeights = (
  expected: ReadonlyArray<{ readonly name: string; readonly shape: ReadonlyArray<number> }>,
  weights: ReadonlyArray<Weight>,
  what: string
): ReadonlyMap<string, Weight> => {
  const given = new Map(weights.map((w) => [w.name, w] as const))
  const problems: Array<string> = []
  for (const w of expected) {
    const g = given.get(w.name)
    if (g === undefined) problems.push(`missing ${w.name} [${w.shape.join(", ")}]`)
    else if (g.shape.join(",") !== w.shape.join(",") || g.values.length !== featureSize(w.shape)) {
      problems.push(`${w.name} has shape [${g.shape.join(", ")}] (${g.values.length} values), expected [${w.shape.join(", ")}]`)
    }
  }
  if (problems.length > 0) throw new Error(`Weights do not fit ${what}: ${problems.join("; ")}`)
  return given
}

const makeNetwork = (
  spec: ModelSpec,
  featureShape: ReadonlyArray<number>,
  numClasses: number,
  values: (w: WeightSpec) => Float32Array,
  dropoutSeed: number
): Network => {
  const { weights, layerNames } = layout(spec, featureShape, numClasses)
  const variables = makeVariables(weights, values)
  const byName = new Map(weights.map((w, i) => [w.name, variables[i]!] as const))
  const param = (name: string): tf.Variable => byName.get(name)!
  const activation = spec.activation
  const fused = fusable(activation)
  let calls = 0

  /** (B, in) -> (B, out): x W + b, then the activation. */
  const denseLayer = (x: tf.Tensor2D, name: string, act: Activation | undefined, training: boolean): tf.Tensor2D => {
    const kernel = param(`${name}/kernel`)
    const bias = param(`${name}/bias`)
    if (!training) {
      const f = act === undefined ? "linear" : fusable(act)
      if (f !== undefined) return tf.fused.matMul({ a: x, b: kernel, bias, activation: f }) as tf.Tensor2D
    }
    // Unfused while training: the fused op's gradient also computes dX for the input layer, which
    // nothing needs (a 784x512 product per step); the plain ops' gradients are evaluated lazily.
    const z = tf.add(tf.matMul(x, kernel), bias)
    return (act === undefined ? z : activate(z, act)) as tf.Tensor2D
  }

  /** (B, H, W, Cin) -> (B, H/2, W/2, Cout): 3x3 same conv + bias, activation, 2x2 max pool. */
  const convLayer = (x: tf.Tensor4D, name: string, training: boolean): tf.Tensor4D => {
    const filter = param(`${name}/kernel`) as unknown as tf.Tensor4D
    const bias = param(`${name}/bias`)
    const z =
      !training && fused !== undefined
        ? tf.fused.conv2d({ x, filter, strides: 1, pad: "same", bias, activation: fused })
        : (activate(tf.add(tf.conv2d(x, filter, 1, "same"), bias), activation) as tf.Tensor4D)
    return tf.maxPool(z, 2, 2, "valid")
  }

  const forward = (x: tf.Tensor2D, opts: ForwardOptions): ForwardResult => {
    const training = opts.training
    const stepSeed = opts.seed ?? deriveSeed(dropoutSeed, "dropout", calls)
    if (training) calls++
    const drop = (t: tf.Tensor2D, rate: number, site: string): tf.Tensor2D =>
      training && rate > 0 ? (tf.dropout(t, rate, undefined, deriveSeed(stepSeed, site)) as tf.Tensor2D) : t
    const batch = x.shape[0]
    const features: Record<string, tf.Tensor2D> = {}
    let h: tf.Tensor2D = x
    if (spec.type === "mlp") {
      h = drop(h, spec.inputDropout, "input")
      spec.hidden.forEach((_, i) => {
        const a = denseLayer(h, `hidden${i + 1}`, activation, training)
        features[`hidden${i + 1}`] = a
        h = drop(a, spec.dropout, `hidden${i + 1}`)
      })
      features["penultimate"] = spec.hidden.length > 0 ? features[`hidden${spec.hidden.length}`]! : x
    } else {
      const [height, width, channels] = spec.imageShape
      let img = tf.reshape(x, [batch, height, width, channels]) as tf.Tensor4D
      spec.channels.forEach((_, i) => {
        img = convLayer(img, `conv${i + 1}`, training)
        features[`conv${i + 1}`] = tf.reshape(img, [batch, -1]) as tf.Tensor2D
      })
      const flat = spec.channels.length > 0 ? features[`conv${spec.channels.length}`]! : x
      h = drop(flat, spec.dropout, "flatten")
      let last = flat
      spec.dense.forEach((_, i) => {
        const a = denseLayer(h, `hidden${i + 1}`, activation, training)
        features[`hidden${i + 1}`] = a
        last = a
        h = drop(a, spec.dropout, `hidden${i + 1}`)
      })
      features["penultimate"] = last
    }
    return { logits: denseLayer(h, "output", undefined, training), features }
  }

  return {
    spec,
    featureShape: [...featureShape],
    numClasses,
    variables,
    weightNames: weights.map((w) => w.name),
    layerNames,
    forward,
    dispose: () => tf.dispose(variables)
  }
}

/** A freshly initialised network; the same seed gives the same initial weights on every backend. */
export const buildModel = (
  spec: ModelSpec,
  featureShape: ReadonlyArray<number>,
  numClasses: number,
  seed: number
): Network => makeNetwork(spec, featureShape, numClasses, (w) => initialValues(w, seed), deriveSeed(seed, "dropout"))

/** A network for `spec` holding the given weights, matched by name; every weight must be present with its shape. */
export const networkFromWeights = (
  spec: ModelSpec,
  featureShape: ReadonlyArray<number>,
  numClasses: number,
  weights: ReadonlyArray<Weight>,
  seed = 0
): Network => {
  const given = matchWeights(weightSpecs(spec, featureShape, numClasses), weights, `the ${spec.type} spec`)
  // Copied: the cpu backend keeps the array it is given, and the artifact's arrays must stay the caller's.
  return makeNetwork(spec, featureShape, numClasses, (w) => given.get(w.name)!.values.slice(), deriveSeed(seed, "dropout"))
}

/** Rebuilds a trained network from its Model artifact. */
export const loadNetwork = (model: Model): Network =>
  networkFromWeights(decodeModelSpec(model.spec), model.featureShape, model.numClasses, model.weights)

/**
 * Copies tensors out as Weights named after the network's variables. Asynchronous because a GPU backend
 * (webgpu) cannot read synchronously in Node.
 */
export const readWeights = (net: Pick<Network, "weightNames">, tensors: ReadonlyArray<tf.Tensor>): Promise<Array<Weight>> =>
  Promise.all(
    tensors.map(async (t, i) => ({
      name: net.weightNames[i]!,
      shape: [...t.shape],
      // data() may hand out the backend's own buffer (cpu): copy so later training cannot change it.
      values: new Float32Array((await t.data()) as Float32Array)
    }))
  )

/** Copies the network's current values out, one Weight per variable. */
export const networkWeights = (net: Pick<Network, "weightNames" | "variables">): Promise<Array<Weight>> =>
  readWeights(net, net.variables)

/**
 * Runs `x` ((n, prod(featureShape)) row-major) through the network in inference mode, `batchSize` rows
 * at a time, and returns the chosen outputs as one (n, D) row-major array. Every tensor is freed.
 */
const batched = async (
  net: Network,
  x: Float32Array,
  n: number,
  batchSize: number,
  pick: (r: ForwardResult) => tf.Tensor2D
): Promise<Float32Array> => {
  const d = featureSize(net.featureShape)
  if (x.length !== n * d) throw new Error(`expected ${n} x ${d} = ${n * d} feature values, got ${x.length}`)
  if (!(batchSize >= 1)) throw new Error(`batchSize must be at least 1, got ${batchSize}`)
  let out: Float32Array | undefined
  let width = 0
  for (let start = 0; start < n; start += batchSize) {
    const rows = Math.min(batchSize, n - start)
    const y = tf.tidy(() =>
      pick(net.forward(tf.tensor2d(x.subarray(start * d, (start + rows) * d), [rows, d]), { training: false }))
    ) as tf.Tensor2D
    try {
      if (out === undefined) {
        width = y.shape[1]
        out = new Float32Array(n * width)
      }
      out.set((await y.data()) as Float32Array, start * width)
    } finally {
      y.dispose()
    }
  }
  return out ?? new Float32Array(0)
}

/** (n, C) logits, row-major. */
export const predictLogits = (net: Network, x: Float32Array, n: number, batchSize = 512): Promise<Float32Array> =>
  batched(net, x, n, batchSize, (r) => r.logits)

/** (n, D) activations of one layer (one of `net.layerNames`), row-major. */
export const featuresOf = async (net: Network, layer: string, x: Float32Array, n: number, batchSize = 512): Promise<Float32Array> => {
  if (!net.layerNames.includes(layer)) {
    throw new Error(`Unknown layer "${layer}"; this ${net.spec.type} has: ${net.layerNames.join(", ")}`)
  }
  return await batched(net, x, n, batchSize, (r) => r.features[layer]!)
}

/** Width D of a layer's features, without running the network. */
export const featureWidth = (spec: ModelSpec, featureShape: ReadonlyArray<number>, numClasses: number, layer: string): number => {
  const inputSize = featureSize(featureShape)
  const { layerNames } = layout(spec, featureShape, numClasses)
  if (!layerNames.includes(layer)) throw new Error(`Unknown layer "${layer}"; this ${spec.type} has: ${layerNames.join(", ")}`)
  const hidden = spec.type === "mlp" ? spec.hidden : spec.dense
  const m = /^hidden(\d+)$/.exec(layer)
  if (m !== null) return hidden[Number(m[1]) - 1]!
  if (spec.type === "cnn") {
    const shapes = cnnShapes(spec, inputSize)
    const c = /^conv(\d+)$/.exec(layer)
    const last = shapes[shapes.length - 1]
    if (c !== null) {
      const s = shapes[Number(c[1]) - 1]!
      return s[0] * s[1] * s[2]
    }
    if (hidden.length > 0) return hidden[hidden.length - 1]!
    return last === undefined ? inputSize : last[0] * last[1] * last[2]
  }
  return hidden.length > 0 ? hidden[hidden.length - 1]! : inputSize
}
