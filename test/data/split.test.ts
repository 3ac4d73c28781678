import { assert, describe, it } from "@effect/vitest"
import { makeDataset, stratifiedSplit, stratifiedSubsample } from "../../src/data/split.js"

const labelsOf = (counts: ReadonlyArray<number>): Int32Array =>
  Int32Array.from(counts.flatMap((n, c) => Array.from({ length: n }, () => c)))

const countBy = (labels: ArrayLike<number>, indices: Int32Array): Map<number, number> => {
  const counts = new Map<number, number>()
  for (const i of indices) counts.set(labels[i]!, (counts.get(labels[i]!) ?? 0) + 1)
  return counts
}

describe("stratifiedSplit", () => {
  it("rounds the held-out counts up per class and trains on the rest", () => {
    const labels = labelsOf([10, 7, 1, 3])
    const s = stratifiedSplit(labels, { validation: 0.1, test: 0.2 }, 3)
    const test = countBy(labels, s.test)
    const validation = countBy(labels, s.validation)
    const train = countBy(labels, s.train)
    assert.deepStrictEqual([0, 1, 2, 3].map((c) => test.get(c) ?? 0), [2, 2, 1, 1])
    assert.deepStrictEqual([0, 1, 2, 3].map((c) => validation.get(c) ?? 0), [1, 1, 0, 1])
    assert.deepStrictEqual([0, 1, 2, 3].map((c) => train.get(c) ?? 0), [7, 4, 0, 1])
  })

  it("partitions the indices and is a function of the seed", () => {
    const labels = labelsOf([50, 30, 20])
    const a = stratifiedSplit(labels, { validation: 0.1, test: 0.2 }, 7)
    const all = [...a.train, ...a.validation, ...a.test].sort((x, y) => x - y)
    assert.deepStrictEqual(all, Array.from({ length: 100 }, (_, i) => i))
    assert.deepStrictEqual(stratifiedSplit(labels, { validation: 0.1, test: 0.2 }, 7), a)
    assert.notDeepEqual(stratifiedSplit(labels, { validation: 0.1, test: 0.2 }, 8).test, a.test)
  })

  it("shuffles each split's order (not class-major)", () => {
    const labels = labelsOf([50, 50])
    const { train } = stratifiedSplit(labels, { validation: 0, test: 0 }, 1)
    const firstHalf = Array.from(train.subarray(0, 50), (i) => labels[i]!)
    assert.isTrue(firstHalf.includes(0) && firstHalf.includes(1))
  })

  it("keeps unlabelled examples as a stratum of their own", () => {
    const labels = Int32Array.from([0, 0, 0, 0, 0, -1, -1, -1, -1, -1])
    const s = stratifiedSplit(labels, { validation: 0, test: 0.2 }, 1)
    assert.deepStrictEqual([...countBy(labels, s.test).entries()].sort(), [[-1, 1], [0, 1]])
  })
})

describe("stratifiedSubsample", () => {
  it("keeps the class proportions by largest remainder and sums to the total", () => {
    const labels = labelsOf([60, 30, 10])
    const chosen = stratifiedSubsample(labels, 11, 5)
    assert.strictEqual(chosen.length, 11)
    const counts = countBy(labels, chosen)
    assert.deepStrictEqual([counts.get(0), counts.get(1), counts.get(2)], [7, 3, 1])
    assert.deepStrictEqual([...chosen], [...chosen].sort((a, b) => a - b))
    assert.deepStrictEqual(stratifiedSubsample(labels, 11, 5), chosen)
  })

  it("returns everything when the total covers the data", () => {
    assert.deepStrictEqual([...stratifiedSubsample(labelsOf([2, 2]), 10, 1)], [0, 1, 2, 3])
  })
})

describe("makeDataset", () => {
  it("gathers features, labels and ids row by row", () => {
    const y = labelsOf([5, 5])
    const x = Float32Array.from({ length: 20 }, (_, i) => i)
    const ds = makeDataset({ name: "t", featureShape: [2], classNames: ["a", "b"], x, y }, { validation: 0.2, test: 0.2 }, 1)
    assert.strictEqual(ds.numClasses, 2)
    for (const split of [ds.splits.train, ds.splits.validation, ds.splits.test]) {
      split.ids.forEach((id, i) => {
        assert.strictEqual(split.y[i], y[id])
        assert.deepStrictEqual([split.x[2 * i], split.x[2 * i + 1]], [2 * id, 2 * id + 1])
      })
    }
  })
})
