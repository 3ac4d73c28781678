import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { denseBuckets, topkBuckets } from "../../src/losses/Buckets.js"
import { defaultDivergenceParams, type DivergenceParams } from "../../src/losses/Divergence.js"
import {
  divergenceNames,
  divergences,
  getDivergence,
  indexDivergences,
  UnknownDivergenceError
} from "../../src/losses/Divergences.js"
import { forwardKl } from "../../src/losses/forward_kl.js"
import {
  assertClose,
  makeRng,
  type Matrix,
  mean,
  numericalGradient,
  randomMatrix,
  refDenseBuckets,
  refDivergence,
  refTopk,
  refTopkBuckets,
  topkTensors,
  tensor2d
} from "./reference.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

interface Case {
  readonly label: string
  readonly name: string
  readonly params: DivergenceParams
}

const d = defaultDivergenceParams
const cases: ReadonlyArray<Case> = [
  { label: "forward_kl", name: "forward_kl", params: d },
  { label: "reverse_kl", name: "reverse_kl", params: d },
  { label: "jsd", name: "jsd", params: d },
  { label: "generalized_jsd beta=0.3", name: "generalized_jsd", params: { ...d, beta: 0.3 } },
  { label: "generalized_jsd beta=0.9", name: "generalized_jsd", params: { ...d, beta: 0.9 } },
  { label: "tvd", name: "tvd", params: d },
  { label: "skew_kl skew=0.1", name: "skew_kl", params: { ...d, skew: 0.1 } },
  { label: "skew_kl skew=0.5", name: "skew_kl", params: { ...d, skew: 0.5 } },
  { label: "skew_reverse_kl skew=0.1", name: "skew_reverse_kl", params: { ...d, skew: 0.1 } },
  { label: "skew_reverse_kl skew=0.6", name: "skew_reverse_kl", params: { ...d, skew: 0.6 } },
  { label: "mse_logits", name: "mse_logits", params: d },
  { label: "cosine probs", name: "cosine", params: { ...d, space: "probs" } },
  { label: "cosine logits", name: "cosine", params: { ...d, space: "logits" } }
]

/** D per example from the tfjs implementation, dense or (with k) top-k. */
const perExample = (c: Case, teacher: Matrix, student: Matrix, t: number, k?: number): Array<number> =>
  tf.tidy(() => {
    const s = tensor2d(student)
    const buckets =
      k === undefined
        ? denseBuckets(tensor2d(teacher), s, t)
        : topkBuckets(topkTensors(teacher, k), s, t)
    return Array.from(getDivergence(c.name).perExample(buckets, c.params).dataSync())
  })

/** d mean_b D / d student logits from tf.grad. */
const gradient = (c: Case, teacher: Matrix, student: Matrix, t: number, k?: number): Array<number> =>
  tf.tidy(() => {
    const teacherT = tensor2d(teacher)
    const topk = k === undefined ? undefined : topkTensors(teacher, k)
    const f = (x: tf.Tensor) => {
      const s = x as tf.Tensor2D
      return tf.mean(
        getDivergence(c.name).perExample(
          topk === undefined ? denseBuckets(teacherT, s, t) : topkBuckets(topk, s, t),
          c.params
        )
      )
    }
    return Array.from(tf.grad(f)(tensor2d(student)).dataSync())
  })

const reference = (c: Case, teacher: Matrix, student: Matrix, t: number, k?: number): Array<number> =>
  teacher.map((row, b) =>
    refDivergence(
      c.name,
      k === undefined ? refDenseBuckets(row, student[b]!, t) : refTopkBuckets(refTopk(row, k), student[b]!, t),
      c.params
    )
  )

describe("divergence registry", () => {
  it("covers every registered divergence in these tests, with unique names and full metadata", () => {
    assert.deepStrictEqual([...new Set(cases.map((c) => c.name))].sort(), [...divergenceNames].sort())
    assert.strictEqual(new Set(divergenceNames).size, divergences.length)
    for (const entry of divergences) {
      assert.isAbove(entry.direction.length, 10, entry.name)
      assert.isAbove(entry.formula.length, 5, entry.name)
      assert.match(entry.paper, /(19|20)\d\d/, entry.name)
    }
  })

  it("rejects a duplicate name", () => {
    assert.throws(() => indexDivergences([forwardKl, forwardKl]), /registered twice/)
  })

  it("names the nearest valid divergence and lists all for an unknown name", () => {
    try {
      getDivergence("foward_kl")
      assert.fail("expected an UnknownDivergenceError")
    } catch (error) {
      assert.instanceOf(error, UnknownDivergenceError)
      const e = error as UnknownDivergenceError
      assert.strictEqual(e.nearest, "forward_kl")
      assert.include(e.message, "did you mean 'forward_kl'")
      for (const name of divergenceNames) assert.include(e.message, name)
    }
    assert.throws(() => getDivergence("Reverse-KL"), /did you mean 'reverse_kl'/)
    assert.throws(() => getDivergence("skewkl"), /did you mean 'skew_kl'/)
  })
})

describe("divergences against plain-array references", () => {
  const rng = makeRng(7)
  const teacher = randomMatrix(rng, 4, 7, 2)
  const student = randomMatrix(rng, 4, 7, 2)
  for (const c of cases) {
    it(`${c.label}: value and gradient, dense and top-k`, () => {
      for (const t of [1, 2.5]) {
        const expected = reference(c, teacher, student, t)
        assertClose(perExample(c, teacher, student, t), expected, 1e-5, 1e-4, `${c.label} T=${t}`)
        const numeric = numericalGradient((s) => mean(reference(c, teacher, s, t)), student).flat()
        assertClose(gradient(c, teacher, student, t), numeric, 2e-5, 2e-3, `${c.label} grad T=${t}`)
      }
      const k = 3
      const expected = reference(c, teacher, student, 2, k)
      assertClose(perExample(c, teacher, student, 2, k), expected, 1e-5, 1e-4, `${c.label} top-${k}`)
      const numeric = numericalGradient((s) => mean(reference(c, teacher, s, 2, k)), student).flat()
      assertClose(gradient(c, teacher, student, 2, k), numeric, 2e-5, 2e-3, `${c.label} top-${k} grad`)
    })
  }
})

describe("divergence invariants", () => {
  const rng = makeRng(11)
  const teacher = randomMatrix(rng, 16, 10, 3)
  const student = randomMatrix(rng, 16, 10, 3)

  it("are non-negative and zero when teacher = student", () => {
    for (const c of cases) {
      for (const value of perExample(c, teacher, student, 1.5)) assert.isAtLeast(value, -1e-6, c.label)
      // equal distributions from logits that differ by a per-row shift: still zero for probability divergences
      const shifted = teacher.map((row, b) => row.map((x) => x + b))
      const same = c.name === "mse_logits" || (c.name === "cosine" && c.params.space === "logits") ? teacher : shifted
      for (const value of perExample(c, teacher, same, 1.5)) assert.approximately(value, 0, 1e-5, c.label)
    }
  })

  it("jsd, tvd, mse_logits and cosine are symmetric; forward and reverse KL are not, and swap", () => {
    for (const c of cases.filter((c) => ["jsd", "tvd", "mse_logits", "cosine"].includes(c.name))) {
      assertClose(perExample(c, teacher, student, 2), perExample(c, student, teacher, 2), 1e-5, 1e-4, c.label)
    }
    const fwd = cases.find((c) => c.name === "forward_kl")!
    const rev = cases.find((c) => c.name === "reverse_kl")!
    const forward = perExample(fwd, teacher, student, 1)
    const reverse = perExample(rev, teacher, student, 1)
    assert.isAbove(mean(forward.map((f, b) => Math.abs(f - reverse[b]!))), 0.1)
    assertClose(perExample(rev, student, teacher, 1), forward, 1e-5, 1e-4, "KL(q || p) with the roles swapped")
  })

  it("jsd is bounded by log 2 and tvd by 1", () => {
    const sharpT = randomMatrix(rng, 8, 10, 30)
    const sharpS = randomMatrix(rng, 8, 10, 30)
    const jsd = cases.find((c) => c.name === "jsd")!
    const tvd = cases.find((c) => c.name === "tvd")!
    for (const v of perExample(jsd, sharpT, sharpS, 1)) assert.isAtMost(v, Math.log(2) + 1e-5)
    for (const v of perExample(tvd, sharpT, sharpS, 1)) assert.isAtMost(v, 1 + 1e-5)
  })

  it("skew divergences are bounded by log(1 / skew) where the KLs blow up", () => {
    // teacher and student peaked on different classes: both KLs are about 40 nats
    const peakedT = [Array.from({ length: 10 }, (_, i) => (i === 0 ? 40 : 0))]
    const peakedS = [Array.from({ length: 10 }, (_, i) => (i === 5 ? 40 : 0))]
    const fwd = perExample(cases.find((c) => c.name === "forward_kl")!, peakedT, peakedS, 1)[0]!
    assert.isAbove(fwd, 30)
    for (const skew of [0.05, 0.1, 0.5]) {
      for (const name of ["skew_kl", "skew_reverse_kl"]) {
        const c: Case = { label: name, name, params: { ...d, skew } }
        const value = perExample(c, peakedT, peakedS, 1)[0]!
        assert.isAtMost(value, Math.log(1 / skew) + 1e-5, `${name} skew=${skew}`)
        assert.isAbove(value, 0.9 * Math.log(1 / skew), `${name} skew=${skew} nearly reaches the bound`)
        for (const v of perExample(c, teacher, student, 1)) assert.isAtMost(v, Math.log(1 / skew) + 1e-5)
      }
    }
  })

  it("generalized_jsd goes to forward KL as beta -> 0 and reverse KL as beta -> 1", () => {
    const gjsd = (beta: number): Case => ({ label: `gjsd ${beta}`, name: "generalized_jsd", params: { ...d, beta } })
    const fwd = cases.find((c) => c.name === "forward_kl")!
    const rev = cases.find((c) => c.name === "reverse_kl")!
    // moderate logits: the limits are reached once beta << min_i q_i / p_i (and 1 - beta << min_i p_i / q_i)
    const t = randomMatrix(rng, 6, 10, 1)
    const s = randomMatrix(rng, 6, 10, 1)
    // the reference in float64 approaches the limits at rate O(beta)
    const refForward = reference(fwd, t, s, 1)
    const refReverse = reference(rev, t, s, 1)
    assertClose(reference(gjsd(1e-8), t, s, 1), refForward, 1e-6, 1e-6, "reference beta -> 0")
    assertClose(reference(gjsd(1 - 1e-8), t, s, 1), refReverse, 1e-6, 1e-6, "reference beta -> 1")
    const gapNear0 = (beta: number) => mean(reference(gjsd(beta), t, s, 1).map((v, b) => Math.abs(v - refForward[b]!)))
    assert.isBelow(gapNear0(1e-3), gapNear0(1e-2))
    assert.isBelow(gapNear0(1e-2), gapNear0(1e-1))
    // the float32 implementation: exact at the endpoints, close to them just inside
    assertClose(perExample(gjsd(0), t, s, 1), perExample(fwd, t, s, 1), 1e-6, 1e-6, "beta = 0")
    assertClose(perExample(gjsd(1), t, s, 1), perExample(rev, t, s, 1), 1e-6, 1e-6, "beta = 1")
    assertClose(perExample(gjsd(1e-3), t, s, 1), refForward, 1e-2, 1e-2, "beta = 1e-3")
    assertClose(perExample(gjsd(1 - 1e-3), t, s, 1), refReverse, 1e-2, 1e-2, "beta = 1 - 1e-3")
    // and 4 x jsd in the middle
    const jsd = perExample(cases.find((c) => c.name === "jsd")!, t, s, 1)
    assertClose(perExample(gjsd(0.5), t, s, 1), jsd.map((v) => 4 * v), 1e-5, 1e-4, "beta = 0.5")
  })

  it("leaks no tensors", () => {
    const before = tf.memory().numTensors
    for (const c of cases) {
      perExample(c, teacher, student, 2)
      gradient(c, teacher.slice(0, 2), student.slice(0, 2), 2, 4)
    }
    assert.strictEqual(tf.memory().numTensors, before)
  })
})
