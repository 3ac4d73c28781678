import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { rkdAngleLoss, rkdDistanceLoss } from "../../src/losses/rkd.js"
import {
  assertClose,
  makeRng,
  type Matrix,
  mean,
  numericalGradient,
  randomMatrix,
  type Row,
  tensor2d
} from "./reference.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const huber = (x: number): number => (Math.abs(x) < 1 ? 0.5 * x * x : Math.abs(x) - 0.5)
const sub = (a: Row, b: Row) => a.map((x, i) => x - b[i]!)
const norm = (a: Row) => Math.sqrt(a.reduce((s, x) => s + x * x, 0))

/** psi_D for all (i, j): distance over the mean off-diagonal distance, 0 on the diagonal. */
const refDistances = (e: Matrix): Array<Array<number>> => {
  const d = e.map((a) => e.map((b) => norm(sub(a, b))))
  const mu = d.flat().reduce((s, x) => s + x, 0) / (e.length * (e.length - 1))
  return d.map((row) => row.map((x) => x / mu))
}

/** psi_A for all (i, j, k), vertex j; 0 when a side is degenerate. */
const refAngles = (e: Matrix): Array<number> => {
  const out: Array<number> = []
  for (let j = 0; j < e.length; j++) {
    for (let i = 0; i < e.length; i++) {
      for (let k = 0; k < e.length; k++) {
        const u = sub(e[i]!, e[j]!)
        const v = sub(e[k]!, e[j]!)
        const nu = norm(u)
        const nv = norm(v)
        out.push(nu === 0 || nv === 0 ? 0 : u.reduce((s, x, a) => s + x * v[a]!, 0) / (nu * nv))
      }
    }
  }
  return out
}

const refDistanceLoss = (t: Matrix, s: Matrix) =>
  mean(sub(refDistances(s).flat(), refDistances(t).flat()).map(huber))
const refAngleLoss = (t: Matrix, s: Matrix) => mean(sub(refAngles(s), refAngles(t)).map(huber))

describe("RKD losses", () => {
  const rng = makeRng(33)
  const teacher = randomMatrix(rng, 5, 7)
  const student = randomMatrix(rng, 5, 3, 0.5)
  const cases = [
    { name: "distance", f: rkdDistanceLoss, ref: refDistanceLoss },
    { name: "angle", f: rkdAngleLoss, ref: refAngleLoss }
  ] as const

  for (const c of cases) {
    it(`${c.name}: value and gradient match the reference across widths`, () => {
      const [value, grad] = tf.tidy(() => {
        const t = tensor2d(teacher)
        const { value, grad } = tf.valueAndGrad((s: tf.Tensor2D) => c.f(t, s))(tensor2d(student))
        return [value.dataSync()[0]!, Array.from(grad.dataSync())] as const
      })
      assert.approximately(value, c.ref(teacher, student), 1e-5)
      assert.isAbove(value, 1e-3)
      assertClose(grad, numericalGradient((s) => c.ref(teacher, s), student).flat(), 1e-5, 2e-3, c.name)
    })
  }

  it("uses the large-error (linear) branch of smooth-L1 too", () => {
    // one far outlier in the student makes some normalised distances differ by more than 1
    const outlier = student.map((row, b) => (b === 0 ? row.map((x) => x + 30) : row))
    const value = tf.tidy(() =>
      rkdDistanceLoss(tensor2d(teacher), tf.tensor2d(outlier)).dataSync()[0]!
    )
    assert.approximately(value, refDistanceLoss(teacher, outlier), 1e-4)
  })

  it("is zero for a rotated, scaled, shifted copy of the teacher", () => {
    // a similarity transform in 2-D keeps normalised distances and angles
    const t2 = randomMatrix(rng, 6, 2)
    const [c, s] = [Math.cos(0.7), Math.sin(0.7)]
    const moved = t2.map(([x, y]) => [3 * (c * x! - s * y!) + 1, 3 * (s * x! + c * y!) - 2])
    for (const f of [rkdDistanceLoss, rkdAngleLoss]) {
      const value = tf.tidy(() => f(tf.tensor2d(t2), tf.tensor2d(moved)).dataSync()[0]!)
      assert.approximately(value, 0, 1e-6)
    }
  })

  it("angle: coincident embeddings make degenerate sides whose angles are 0, as in the reference", () => {
    const twins = [student[0]!, student[0]!, student[1]!, student[2]!]
    const t = teacher.slice(0, 4)
    const value = tf.tidy(() => rkdAngleLoss(tensor2d(t), tensor2d(twins)).dataSync()[0]!)
    assert.approximately(value, refAngleLoss(t, twins), 1e-6)
  })

  it("stays finite with coincident embeddings and leaks no tensors", () => {
    const before = tf.memory().numTensors
    const twins = [student[0]!, student[0]!, student[1]!, student[2]!]
    for (const f of [rkdDistanceLoss, rkdAngleLoss]) {
      const grad = tf.tidy(() => {
        const t = tf.tensor2d(teacher.slice(0, 4) as Array<Array<number>>)
        return Array.from(tf.grad((s: tf.Tensor) => f(t, s as tf.Tensor2D))(tf.tensor2d(twins)).dataSync())
      })
      for (const g of grad) assert.isTrue(Number.isFinite(g))
    }
    assert.throws(() => tf.tidy(() => rkdAngleLoss(tf.zeros([3, 2]), tf.zeros([4, 2]))), /one embedding per example/)
    assert.strictEqual(tf.memory().numTensors, before)
  })
})
