/**
 * Small seeded toy sets for fast tests and for seeing distillation work on shapes one can plot:
 * a Gaussian mixture, two interleaved moons and interleaved spirals. The data comes from
 * `deriveSeed(seed, "data", name)` and the split from the shared stratified split, so one seed fixes both.
 * Examples are generated class by class; the id of an example is its index in that order.
 */
import type { Dataset } from "../domain/Artifact.js"
import { deriveSeed, makeRng } from "../domain/Random.js"
import type { SplitFractions } from "./split.js"
import { makeDataset } from "./split.js"

export interface SyntheticCommon extends SplitFractions {
  readonly seed: number
}

/** `examples` shared out as evenly as possible, the first classes taking the remainder. */
const perClass = (examples: number, classes: number): Array<number> =>
  Array.from({ length: classes }, (_, c) => Math.floor(examples / classes) + (c < examples % classes ? 1 : 0))

const classNames = (classes: number): Array<string> => Array.from({ length: classes }, (_, c) => String(c))

export interface GaussianMixtureOptions extends SyntheticCommon {
  readonly classes: number
  readonly dims: number
  readonly examples: number
  /** Standard deviation of each class around its mean, in every dimension. */
  readonly spread: number
  /** Distance between neighbouring class means. */
  readonly separation: number
}

/**
 * Class means placed so that neighbours are `separation` apart: on scaled unit axes when there are at
 * least as many dimensions as classes (every pair equidistant), else on a circle in the first two
 * dimensions (on a line when dims = 1).
 */
export const mixtureMeans = (classes: number, dims: number, separation: number): Array<Float64Array> =>
  Array.from({ length: classes }, (_, c) => {
    const mean = new Float64Array(dims)
    if (classes <= dims) {
      mean[c] = separation / Math.SQRT2
    } else if (dims === 1) {
      mean[0] = (c - (classes - 1) / 2) * separation
    } else {
      const radius = separation / (2 * Math.sin(Math.PI / classes))
      const angle = (2 * Math.PI * c) / classes
      mean[0] = radius * Math.cos(angle)
      mean[1] = radius * Math.sin(angle)
    }
    return mean
  })

export const gaussianMixture = (options: GaussianMixtureOptions): Dataset => {
  const { classes, dims, examples, spread } = options
  const rng = makeRng(deriveSeed(options.seed, "data", "gaussian_mixture"))
  const means = mixtureMeans(classes, dims, options.separation)
  const x = new Float32Array(examples * dims)
  const y = new Int32Array(examples)
  let row = 0
  perClass(examples, classes).forEach((count, c) => {
    for (let i = 0; i < count; i++, row++) {
      y[row] = c
      for (let d = 0; d < dims; d++) x[row * dims + d] = means[c]![d]! + spread * rng.normal()
    }
  })
  return makeDataset(
    { name: "gaussian_mixture", featureShape: [dims], classNames: classNames(classes), x, y },
    options,
    options.seed
  )
}

export interface TwoMoonsOptions extends SyntheticCommon {
  readonly examples: number
  /** Standard deviation of the Gaussian noise added to each coordinate. */
  readonly noise: number
}

/**
 * scikit-learn's `make_moons`: class 0 is the upper half circle (cos t, sin t), class 1 the lower one
 * (1 - cos t, 0.5 - sin t), t evenly spaced over [0, pi], plus noise. Features lie near [-1, 2] x [-0.5, 1].
 */
export const twoMoons = (options: TwoMoonsOptions): Dataset => {
  const rng = makeRng(deriveSeed(options.seed, "data", "two_moons"))
  const x = new Float32Array(options.examples * 2)
  const y = new Int32Array(options.examples)
  let row = 0
  perClass(options.examples, 2).forEach((count, c) => {
    for (let i = 0; i < count; i++, row++) {
      const t = count === 1 ? 0 : (Math.PI * i) / (count - 1)
      y[row] = c
      x[row * 2] = (c === 0 ? Math.cos(t) : 1 - Math.cos(t)) + options.noise * rng.normal()
      x[row * 2 + 1] = (c === 0 ? Math.sin(t) : 0.5 - Math.sin(t)) + options.noise * rng.normal()
    }
  })
  return makeDataset({ name: "two_moons", featureShape: [2], classNames: classNames(2), x, y }, options, options.seed)
}

export interface SpiralsOptions extends SyntheticCommon {
  readonly classes: number
  readonly examples: number
  /** Standard deviation of the Gaussian noise added to each coordinate. */
  readonly noise: number
  /** Full turns each arm makes from the centre to radius 1. */
  readonly turns: number
}

/**
 * `classes` arms from the origin, arm c rotated by 2 pi c / classes: radius r evenly spaced over
 * [0, 1] and angle 2 pi (turns * r + c / classes), plus noise. Features lie near [-1, 1]^2.
 */
export const spirals = (options: SpiralsOptions): Dataset => {
  const rng = makeRng(deriveSeed(options.seed, "data", "spirals"))
  const x = new Float32Array(options.examples * 2)
  const y = new Int32Array(options.examples)
  let row = 0
  perClass(options.examples, options.classes).forEach((count, c) => {
    for (let i = 0; i < count; i++, row++) {
      const r = count === 1 ? 1 : i / (count - 1)
      const angle = 2 * Math.PI * (options.turns * r + c / options.classes)
      y[row] = c
      x[row * 2] = r * Math.cos(angle) + options.noise * rng.normal()
      x[row * 2 + 1] = r * Math.sin(angle) + options.noise * rng.normal()
    }
  })
  return makeDataset(
    { name: "spirals", featureShape: [2], classNames: classNames(options.classes), x, y },
    options,
    options.seed
  )
}
