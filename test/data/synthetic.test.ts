import { assert, describe, it } from "@effect/vitest"
import type { Dataset, Split } from "../../src/domain/Artifact.js"
import { gaussianMixture, mixtureMeans, spirals, twoMoons } from "../../src/data/synthetic.js"

const fractions = { validation: 0.1, test: 0.2 }

const all = (ds: Dataset): ReadonlyArray<Split> => [ds.splits.train, ds.splits.validation, ds.splits.test]

const classCounts = (ds: Dataset): Array<number> => {
  const counts = new Array<number>(ds.numClasses).fill(0)
  for (const split of all(ds)) for (const label of split.y) counts[label]!++
  return counts
}

/** Accuracy on the test split of 1-nearest-neighbour over the train split: high when the classes are separable. */
const oneNnAccuracy = (ds: Dataset): number => {
  const d = ds.featureShape[0]!
  const { train, test } = ds.splits
  let correct = 0
  for (let i = 0; i < test.y.length; i++) {
    let best = Infinity
    let label = -1
    for (let j = 0; j < train.y.length; j++) {
      let dist = 0
      for (let k = 0; k < d; k++) dist += (test.x[i * d + k]! - train.x[j * d + k]!) ** 2
      if (dist < best) {
        best = dist
        label = train.y[j]!
      }
    }
    if (label === test.y[i]) correct++
  }
  return correct / test.y.length
}

const range = (ds: Dataset, dim: number): [number, number] => {
  const d = ds.featureShape[0]!
  let lo = Infinity
  let hi = -Infinity
  for (const split of all(ds)) {
    for (let i = dim; i < split.x.length; i += d) {
      lo = Math.min(lo, split.x[i]!)
      hi = Math.max(hi, split.x[i]!)
    }
  }
  return [lo, hi]
}

describe("gaussian_mixture", () => {
  const options = { classes: 3, dims: 2, examples: 300, spread: 1, separation: 6, seed: 1, ...fractions }

  it("places neighbouring means `separation` apart", () => {
    const dist = (a: Float64Array, b: Float64Array) => Math.hypot(...a.map((v, i) => v - b[i]!))
    const circle = mixtureMeans(4, 2, 3)
    assert.closeTo(dist(circle[0]!, circle[1]!), 3, 1e-9)
    const axes = mixtureMeans(3, 5, 3)
    assert.closeTo(dist(axes[0]!, axes[2]!), 3, 1e-9)
    const line = mixtureMeans(3, 1, 2)
    assert.deepStrictEqual(line.map((m) => m[0]), [-2, 0, 2])
  })

  it("has balanced classes, the declared shape and a stratified 210/30/60 split", () => {
    const ds = gaussianMixture(options)
    assert.deepStrictEqual(classCounts(ds), [100, 100, 100])
    assert.deepStrictEqual(ds.featureShape, [2])
    assert.deepStrictEqual(all(ds).map((s) => s.y.length), [210, 30, 60])
    assert.strictEqual(ds.splits.train.x.length, 210 * 2)
  })

  it("is seeded", () => {
    assert.deepStrictEqual(gaussianMixture(options), gaussianMixture(options))
    assert.notDeepEqual(gaussianMixture(options).splits.train.x, gaussianMixture({ ...options, seed: 2 }).splits.train.x)
  })

  it("is learnable when separated and not when the means coincide", () => {
    assert.isAbove(oneNnAccuracy(gaussianMixture(options)), 0.9)
    assert.isBelow(oneNnAccuracy(gaussianMixture({ ...options, separation: 0 })), 0.6)
  })

  it("works in more dimensions than classes", () => {
    const ds = gaussianMixture({ ...options, dims: 8, classes: 4, examples: 203 })
    assert.deepStrictEqual(classCounts(ds), [51, 51, 51, 50])
    assert.strictEqual(ds.splits.test.x.length, ds.splits.test.y.length * 8)
  })
})

describe("two_moons", () => {
  const options = { examples: 400, noise: 0.1, seed: 3, ...fractions }

  it("has two balanced classes in the moons' box", () => {
    const ds = twoMoons(options)
    assert.deepStrictEqual(classCounts(ds), [200, 200])
    const [x0, x1] = range(ds, 0)
    const [y0, y1] = range(ds, 1)
    assert.isTrue(x0 > -1.6 && x1 < 2.6 && y0 > -1.1 && y1 < 1.6, `${x0} ${x1} ${y0} ${y1}`)
  })

  it("is seeded and learnable", () => {
    const ds = twoMoons(options)
    assert.deepStrictEqual(twoMoons(options), ds)
    assert.notDeepEqual(twoMoons({ ...options, seed: 4 }).splits.train.x, ds.splits.train.x)
    assert.isAbove(oneNnAccuracy(ds), 0.95)
  })

  it("is exactly the two half circles without noise", () => {
    const ds = twoMoons({ ...options, noise: 0 })
    const { x, y } = ds.splits.train
    for (let i = 0; i < y.length; i++) {
      const [cx, cy] = y[i] === 0 ? [0, 0] : [1, 0.5]
      assert.closeTo(Math.hypot(x[2 * i]! - cx, x[2 * i + 1]! - cy), 1, 1e-5)
    }
  })
})

describe("spirals", () => {
  const options = { classes: 3, examples: 600, noise: 0.02, turns: 1, seed: 5, ...fractions }

  it("has balanced classes in [-1, 1]^2 give or take the noise", () => {
    const ds = spirals(options)
    assert.deepStrictEqual(classCounts(ds), [200, 200, 200])
    for (const dim of [0, 1]) {
      const [lo, hi] = range(ds, dim)
      assert.isTrue(lo > -1.15 && hi < 1.15)
    }
  })

  it("is seeded and learnable", () => {
    const ds = spirals(options)
    assert.deepStrictEqual(spirals(options), ds)
    assert.notDeepEqual(spirals({ ...options, seed: 6 }).splits.train.x, ds.splits.train.x)
    assert.isAbove(oneNnAccuracy(ds), 0.9)
  })
})
