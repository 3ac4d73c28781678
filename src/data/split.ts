/**
 * The one way every data source becomes a `Dataset`: a seeded train / validation / test split stratified
 * by label, so that each split keeps the class proportions of the whole, plus a seeded stratified
 * subsample for tiny runs. Pure and synchronous; unlabelled examples (-1) form a stratum of their own.
 */
import type { Dataset, Split } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed, makeRng, shuffleInPlace } from "../domain/Random.js"

/** Fractions of each class held out; the rest trains. */
export interface SplitFractions {
  readonly validation: number
  readonly test: number
}

export const defaultFractions: SplitFractions = { validation: 0.1, test: 0.2 }

/** Row indices into the source, per split. */
export interface SplitIndices {
  readonly train: Int32Array
  readonly validation: Int32Array
  readonly test: Int32Array
}

/** `ceil(fraction * n)`, ignoring float noise such as 0.2 * 1070 = 214.00000000000003. */
const ceilCount = (fraction: number, n: number): number => Math.min(n, Math.max(0, Math.ceil(fraction * n - 1e-9)))

/** Indices grouped by label, labels ascending, each group in source order. */
const groupByLabel = (labels: ArrayLike<number>): Array<Array<number>> => {
  const groups = new Map<number, Array<number>>()
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!
    let group = groups.get(label)
    if (group === undefined) {
      group = []
      groups.set(label, group)
    }
    group.push(i)
  }
  return [...groups.keys()].sort((a, b) => a - b).map((label) => groups.get(label)!)
}

/**
 * Per class: shuffle with the seed, take `ceil(test * n_c)` for test and `ceil(validation * n_c)` for
 * validation (never more than remain), the rest for train. Each split's order is then shuffled with its
 * own sub-seed, so no split is class-major. Rounding up per class means a held-out split is at least as
 * large as its fraction, by at most one example per class.
 */
export const stratifiedSplit = (
  labels: ArrayLike<number>,
  fractions: SplitFractions,
  seed: number
): SplitIndices => {
  const rng = makeRng(deriveSeed(seed, "split"))
  const parts = { train: [] as Array<number>, validation: [] as Array<number>, test: [] as Array<number> }
  for (const members of groupByLabel(labels)) {
    shuffleInPlace(members, rng)
    const n = members.length
    const nTest = ceilCount(fractions.test, n)
    const nValidation = Math.min(n - nTest, ceilCount(fractions.validation, n))
    for (let i = 0; i < n; i++) {
      const part = i < nTest ? parts.test : i < nTest + nValidation ? parts.validation : parts.train
      part.push(members[i]!)
    }
  }
  const finish = (name: keyof SplitIndices): Int32Array => {
    const indices = Int32Array.from(parts[name])
    shuffleInPlace(indices, makeRng(deriveSeed(seed, "split", name)))
    return indices
  }
  return { train: finish("train"), validation: finish("validation"), test: finish("test") }
}

/**
 * A seeded subsample of `total` rows that keeps the class proportions: class c gets
 * `total * n_c / N` rows rounded by largest remainder (so the counts sum to `total`), chosen at random.
 * Returns the chosen indices in ascending (source) order; all rows when `total >= N`.
 */
export const stratifiedSubsample = (labels: ArrayLike<number>, total: number, seed: number): Int32Array => {
  const n = labels.length
  if (total >= n) return Int32Array.from({ length: n }, (_, i) => i)
  const groups = groupByLabel(labels)
  const quotas = groups.map((g) => (total * g.length) / n)
  const counts = quotas.map(Math.floor)
  let left = total - counts.reduce((a, b) => a + b, 0)
  // Largest remainders first; ties go to the lower label so the result depends on nothing but the data.
  const order = quotas.map((q, c) => [q - Math.floor(q), c] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1])
  for (const [, c] of order) {
    if (left === 0) break
    counts[c]!++
    left--
  }
  const rng = makeRng(deriveSeed(seed, "subsample"))
  const chosen: Array<number> = []
  groups.forEach((members, c) => {
    shuffleInPlace(members, rng)
    for (let i = 0; i < counts[c]!; i++) chosen.push(members[i]!)
  })
  return Int32Array.from(chosen).sort()
}

/** The rows at `indices` of a flat (N, featureSize) table. */
export const gatherRows = (
  source: { readonly x: Float32Array; readonly y: Int32Array; readonly ids: Int32Array },
  featureSize: number,
  indices: Int32Array
): Split => {
  const x = new Float32Array(indices.length * featureSize)
  const y = new Int32Array(indices.length)
  const ids = new Int32Array(indices.length)
  for (let i = 0; i < indices.length; i++) {
    const row = indices[i]!
    x.set(source.x.subarray(row * featureSize, (row + 1) * featureSize), i * featureSize)
    y[i] = source.y[row]!
    ids[i] = source.ids[row]!
  }
  return { x, y, ids }
}

export interface DatasetSource {
  readonly name: string
  readonly featureShape: ReadonlyArray<number>
  readonly classNames: ReadonlyArray<string>
  /** (N * prod(featureShape)) features, row-major. */
  readonly x: Float32Array
  /** (N) labels in [0, classNames.length), or -1 for unlabelled. */
  readonly y: Int32Array
  /** (N) stable ids; 0..N-1 when absent. */
  readonly ids?: Int32Array
}

/** Splits a whole table into a `Dataset` with `stratifiedSplit`. */
export const makeDataset = (source: DatasetSource, fractions: SplitFractions, seed: number): Dataset => {
  const size = featureSize(source.featureShape)
  const n = source.y.length
  if (source.x.length !== n * size) {
    throw new Error(`makeDataset(${source.name}): ${source.x.length} features for ${n} examples of size ${size}`)
  }
  const table = { x: source.x, y: source.y, ids: source.ids ?? Int32Array.from({ length: n }, (_, i) => i) }
  const indices = stratifiedSplit(source.y, fractions, seed)
  return {
    _tag: "Dataset",
    name: source.name,
    featureShape: [...source.featureShape],
    numClasses: source.classNames.length,
    classNames: [...source.classNames],
    splits: {
      train: gatherRows(table, size, indices.train),
      validation: gatherRows(table, size, indices.validation),
      test: gatherRows(table, size, indices.test)
    }
  }
}
