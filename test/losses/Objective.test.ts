import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import {
  describeObjective,
  divergenceNames,
  hardLabelCrossEntropy,
  objectiveLoss,
  ObjectiveSpec,
  type TeacherBatch
} from "../../src/losses/Objective.js"
import {
  assertClose,
  logSoftmax,
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

const decode = Schema.decodeUnknownSync(ObjectiveSpec)

/** The objective from its doc comment, in float64. */
const refObjective = (
  spec: ObjectiveSpec,
  student: Matrix,
  labels: ReadonlyArray<number>,
  teacher?: Matrix,
  k?: number
): number => {
  const labelled = labels.flatMap((y, b) => (y >= 0 ? [-logSoftmax(student[b]!)[y]!] : []))
  const ce = labelled.length === 0 ? 0 : mean(labelled)
  if (teacher === undefined || spec.divergence === "none") return ce
  const t = spec.temperature
  const d = mean(
    teacher.map((row, b) =>
      refDivergence(
        spec.divergence,
        k === undefined ? refDenseBuckets(row, student[b]!, t) : refTopkBuckets(refTopk(row, k), student[b]!, t),
        spec
      )
    )
  )
  return spec.alpha * (spec.scaleT2 ? t * t : 1) * d + (1 - spec.alpha) * ce
}

const loss = (spec: ObjectiveSpec, student: Matrix, labels: ReadonlyArray<number>, teacher?: Matrix, k?: number) =>
  tf.tidy(() => {
    const batch: TeacherBatch | undefined =
      teacher === undefined
        ? undefined
        : k === undefined
          ? { logits: tensor2d(teacher) }
          : { topk: topkTensors(teacher, k) }
    return objectiveLoss(
      spec,
      tensor2d(student),
      tf.tensor1d(labels as Array<number>, "int32"),
      batch
    ).dataSync()[0]!
  })

describe("ObjectiveSpec", () => {
  it("fills the defaults", () => {
    assert.deepStrictEqual(decode({}), {
      divergence: "none",
      temperature: 1,
      alpha: 0.5,
      scaleT2: true,
      beta: 0.5,
      skew: 0.1,
      space: "probs"
    })
  })

  it("accepts every registered divergence and rejects bad values", () => {
    for (const divergence of divergenceNames) assert.strictEqual(decode({ divergence }).divergence, divergence)
    // GKD's endpoints: beta 0 is forward KL, 1 reverse KL (generalized_jsd.ts takes the limits).
    for (const beta of [0, 1]) assert.strictEqual(decode({ divergence: "generalized_jsd", beta }).beta, beta)
    for (const bad of [
      { divergence: "forward-kl" },
      { temperature: 0 },
      { temperature: -1 },
      { alpha: 1.5 },
      { beta: -0.1 },
      { beta: 1.1 },
      { skew: 1 },
      { space: "both" }
    ]) {
      assert.throws(() => decode(bad), undefined, undefined, JSON.stringify(bad))
    }
  })
})

describe("objectiveLoss", () => {
  const rng = makeRng(5)
  const teacher = randomMatrix(rng, 6, 5, 2)
  const student = randomMatrix(rng, 6, 5, 2)
  const labels = [0, 3, -1, 4, -1, 1]

  it("matches the reference for every divergence, dense and top-k", () => {
    for (const divergence of divergenceNames) {
      const spec = decode({ divergence, temperature: 2.5, alpha: 0.7, beta: 0.4, skew: 0.2 })
      const expected = refObjective(spec, student, labels, teacher)
      assert.approximately(loss(spec, student, labels, teacher), expected, 1e-4 * (1 + expected), divergence)
      const expectedTopk = refObjective(spec, student, labels, teacher, 2)
      assert.approximately(loss(spec, student, labels, teacher, 2), expectedTopk, 1e-4 * (1 + expectedTopk), divergence)
    }
  })

  it("scales the distillation term by T^2 and mixes hard labels with weight 1 - alpha", () => {
    const at = (o: object) => loss(decode({ divergence: "forward_kl", temperature: 3, ...o }), student, labels, teacher)
    const distill = at({ alpha: 1, scaleT2: false })
    const ce = at({ alpha: 0 })
    assert.approximately(at({ alpha: 1, scaleT2: true }), 9 * distill, 1e-4)
    assert.approximately(ce, loss(decode({}), student, labels), 1e-6)
    assert.approximately(at({ alpha: 0.3 }), 0.3 * 9 * distill + 0.7 * ce, 1e-4)
    assert.approximately(at({ alpha: 0.3, scaleT2: false }), 0.3 * distill + 0.7 * ce, 1e-4)
  })

  it("is the CE alone without a teacher or with divergence none", () => {
    const ce = refObjective(decode({}), student, labels)
    assert.approximately(loss(decode({ divergence: "forward_kl", alpha: 0.9 }), student, labels), ce, 1e-5)
    assert.approximately(loss(decode({ divergence: "none", alpha: 0.9 }), student, labels, teacher), ce, 1e-5)
  })

  it("ignores unlabelled rows in the CE, and gives CE = 0 when no row is labelled", () => {
    const ce = (s: Matrix, y: ReadonlyArray<number>) =>
      tf.tidy(
        () =>
          hardLabelCrossEntropy(tensor2d(s), tf.tensor1d(y as Array<number>, "int32")).dataSync()[0]!
      )
    const labelledOnly = [0, 1, 3, 5]
    assert.approximately(
      ce(student, labels),
      ce(
        labelledOnly.map((b) => student[b]!),
        labelledOnly.map((b) => labels[b]!)
      ),
      1e-6
    )
    const changed = student.map((row, b) => (labels[b]! < 0 ? row.map((x) => x * 5 + 3) : row))
    assert.approximately(ce(changed, labels), ce(student, labels), 1e-6)
    const none = labels.map(() => -1)
    assert.strictEqual(ce(student, none), 0)
    const spec = decode({ divergence: "reverse_kl", alpha: 0.4, temperature: 2 })
    assert.approximately(loss(spec, student, none, teacher), refObjective(spec, student, none, teacher), 1e-5)
  })

  it("has the gradient of the reference w.r.t. the student logits", () => {
    for (const divergence of ["forward_kl", "generalized_jsd", "cosine"]) {
      const spec = decode({ divergence, temperature: 2, alpha: 0.6, beta: 0.3, space: "logits" })
      for (const k of [undefined, 3]) {
        const g = tf.tidy(() => {
          const batch: TeacherBatch =
            k === undefined ? { logits: tensor2d(teacher) } : { topk: topkTensors(teacher, k) }
          const y = tf.tensor1d(labels, "int32")
          return Array.from(
            tf.grad((s: tf.Tensor) => objectiveLoss(spec, s as tf.Tensor2D, y, batch))(tensor2d(student)).dataSync()
          )
        })
        const numeric = numericalGradient((s) => refObjective(spec, s, labels, teacher, k), student).flat()
        assertClose(g, numeric, 2e-5, 2e-3, `${divergence} k=${k}`)
      }
    }
  })

  it("stays finite on extreme logits", () => {
    const huge = student.map((row) => row.map((x) => 400 * x))
    const hugeT = teacher.map((row) => row.map((x) => -400 * x))
    for (const divergence of divergenceNames) {
      const spec = decode({ divergence, temperature: 1 })
      const [value, grad] = tf.tidy(() => {
        const batch: TeacherBatch = { logits: tf.tensor2d(hugeT) }
        const y = tf.tensor1d(labels, "int32")
        const { grad, value } = tf.valueAndGrad((s: tf.Tensor2D) => objectiveLoss(spec, s, y, batch))(tf.tensor2d(huge))
        return [value.dataSync()[0]!, Array.from(grad.dataSync())] as const
      })
      assert.isTrue(Number.isFinite(value), `${divergence} value ${value}`)
      for (const g of grad) assert.isTrue(Number.isFinite(g), `${divergence} gradient`)
    }
  })

  it("trains a student through optimizer.minimize without leaking tensors", () => {
    const spec = decode({ divergence: "forward_kl", temperature: 2, alpha: 0.8 })
    const s = tf.variable(tensor2d(student))
    const t = tensor2d(teacher)
    const y = tf.tensor1d(labels, "int32")
    const optimizer = tf.train.adam(0.1)
    const step = () => optimizer.minimize(() => objectiveLoss(spec, s, y, { logits: t }), true, [s])!
    const first = step()
    const initial = first.dataSync()[0]!
    first.dispose()
    const before = tf.memory().numTensors
    for (let i = 0; i < 30; i++) step().dispose()
    assert.strictEqual(tf.memory().numTensors, before)
    const final = tf.tidy(() => objectiveLoss(spec, s, y, { logits: t }).dataSync()[0]!)
    assert.isBelow(final, 0.5 * initial)
    tf.dispose([s, t, y])
    optimizer.dispose()
  })
})

describe("describeObjective", () => {
  const isFlat = (record: Record<string, unknown>) =>
    Object.values(record).every((v) => ["string", "number", "boolean"].includes(typeof v))

  it("records the divergence, its direction and formula, and the weight of each term", () => {
    const info = describeObjective(decode({ divergence: "forward_kl", temperature: 4, alpha: 0.9 }))
    assert.isTrue(isFlat(info))
    assert.strictEqual(info.divergence, "forward_kl")
    assert.include(String(info.direction), "KL(teacher || student)")
    assert.include(String(info.formula), "log p_i - log q_i")
    assert.strictEqual(info.temperature, 4)
    assert.strictEqual(info.alpha, 0.9)
    assert.approximately(info.distillWeight as number, 0.9 * 16, 1e-12)
    assert.approximately(info.ceWeight as number, 0.1, 1e-12)
    assert.isUndefined(info.beta)
    assert.isUndefined(info.skew)
    assert.deepStrictEqual(JSON.parse(JSON.stringify(info)), info)
  })

  it("records beta, skew and space only where the divergence uses them", () => {
    const gjsd = describeObjective(decode({ divergence: "generalized_jsd", beta: 0.2 }))
    assert.strictEqual(gjsd.beta, 0.2)
    assert.isUndefined(gjsd.skew)
    const skew = describeObjective(decode({ divergence: "skew_reverse_kl", skew: 0.3, scaleT2: false, temperature: 2 }))
    assert.strictEqual(skew.skew, 0.3)
    assert.isUndefined(skew.beta)
    assert.strictEqual(skew.distillWeight, 0.5)
    assert.strictEqual(describeObjective(decode({ divergence: "cosine", space: "logits" })).space, "logits")
  })

  it("gives the hard labels all the weight for divergence none", () => {
    const info = describeObjective(decode({ alpha: 0.9 }))
    assert.strictEqual(info.divergence, "none")
    assert.strictEqual(info.distillWeight, 0)
    assert.strictEqual(info.ceWeight, 1)
    assert.isTrue(isFlat(info))
  })
})
