import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { denseBuckets, topkBuckets, toBuckets } from "../../src/losses/Buckets.js"
import { defaultDivergenceParams } from "../../src/losses/Divergence.js"
import { divergences } from "../../src/losses/Divergences.js"
import {
  assertClose,
  makeRng,
  type Matrix,
  mean,
  randomMatrix,
  refDivergence,
  refTopk,
  refTopkBuckets,
  softmax,
  topkTensors,
  tensor2d
} from "./reference.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const probabilitySpace: ReadonlyArray<string> = divergences.filter((d) => d.name !== "mse_logits").map((d) => d.name)

const perExample = (name: string, teacher: Matrix, student: Matrix, t: number, k?: number): Array<number> =>
  tf.tidy(() => {
    const s = tensor2d(student)
    const buckets =
      k === undefined
        ? denseBuckets(tensor2d(teacher), s, t)
        : topkBuckets(topkTensors(teacher, k), s, t)
    const divergence = divergences.find((d) => d.name === name)!
    return Array.from(divergence.perExample(buckets, defaultDivergenceParams).dataSync())
  })

describe("top-k teacher buckets", () => {
  const rng = makeRng(3)
  const classes = 20
  // a peaked teacher (as trained teachers are) and a student near it
  const teacher = randomMatrix(rng, 8, classes, 3)
  const student = teacher.map((row) => row.map((x) => 0.7 * x + rng.normal()))

  it("equal the dense result at k = C for every divergence, and at k = C - 1 in probability space", () => {
    for (const d of divergences) {
      for (const t of [1, 3]) {
        const dense = perExample(d.name, teacher, student, t)
        assertClose(perExample(d.name, teacher, student, t, classes), dense, 1e-5, 1e-4, `${d.name} k=C T=${t}`)
        if (probabilitySpace.includes(d.name)) {
          assertClose(perExample(d.name, teacher, student, t, classes - 1), dense, 1e-5, 1e-4, `${d.name} k=C-1`)
        }
      }
    }
  })

  it("converge to the dense result as k grows", () => {
    for (const name of probabilitySpace) {
      for (const t of [2, 4]) {
        const dense = perExample(name, teacher, student, t)
        const errors = [1, 2, 4, 8, 12, 16, 19].map((k) =>
          mean(perExample(name, teacher, student, t, k).map((v, b) => Math.abs(v - dense[b]!)))
        )
        const label = `${name} T=${t} errors ${errors.map((e) => e.toExponential(2)).join(" ")}`
        errors.slice(1).forEach((e, i) => assert.isAtMost(e, errors[i]! + 1e-6, label))
        assert.isBelow(errors[5]!, 0.2 * errors[0]!, label)
        assert.isBelow(errors[6]!, 1e-5, label)
      }
    }
  })

  it("give the exact teacher distribution at T = 1, with all the tail mass in one bucket", () => {
    const k = 5
    const buckets = tf.tidy(() => {
      const b = topkBuckets(topkTensors(teacher, k), tensor2d(student), 1)
      return [b.teacherLogProbs.arraySync(), b.studentLogProbs.arraySync()] as const
    })
    teacher.forEach((row, b) => {
      const p = softmax(row)
      const q = softmax(student[b]!)
      const top = row.map((_, i) => i).sort((x, y) => row[y]! - row[x]!).slice(0, k)
      const tail = (dist: Array<number>) => 1 - top.reduce((s, i) => s + dist[i]!, 0)
      assertClose(buckets[0][b]!.map(Math.exp), [...top.map((i) => p[i]!), tail(p)], 1e-6, 1e-4, "teacher buckets")
      assertClose(buckets[1][b]!.map(Math.exp), [...top.map((i) => q[i]!), tail(q)], 1e-6, 1e-4, "student buckets")
    })
  })

  it("handle a -Infinity tail at k = C, and float indices", () => {
    const values = tf.tidy(() => {
      const topk = topkTensors(teacher, classes)
      assert.strictEqual(topk.tailLogSumExp.dataSync()[0], -Infinity)
      const buckets = toBuckets(
        { topk: { ...topk, indices: tf.cast(topk.indices, "float32") } },
        tensor2d(student),
        2
      )
      return Array.from(divergences[0].perExample(buckets, defaultDivergenceParams).dataSync())
    })
    for (const v of values) assert.isTrue(Number.isFinite(v))
    assertClose(values, perExample("forward_kl", teacher, student, 2), 1e-5, 1e-4, "k = C")
  })

  it("treat a -Infinity tail with k < C as an empty tail bucket", () => {
    // the teacher rules out its last two classes entirely
    const k = classes - 2
    const ruledOut = teacher.map((row) => row.map((x, i) => (i >= k ? -Infinity : x + 50)))
    for (const name of ["forward_kl", "jsd", "tvd", "cosine"]) {
      const values = perExample(name, ruledOut, student, 2, k)
      const expected = ruledOut.map((row, b) =>
        refDivergence(name, refTopkBuckets(refTopk(row, k), student[b]!, 2), defaultDivergenceParams)
      )
      assertClose(values, expected, 1e-5, 1e-4, name)
    }
  })

  it("leak no tensors", () => {
    const before = tf.memory().numTensors
    for (const k of [1, 7, classes]) perExample("jsd", teacher, student, 2, k)
    assert.strictEqual(tf.memory().numTensors, before)
  })
})
