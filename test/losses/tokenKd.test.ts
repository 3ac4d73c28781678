/**
 * Token-level KD against a float64 plain-array reference: alpha * T^2 * the mean over counted target
 * positions of D(teacher_T || student_T) + (1 - alpha) * next-token CE, dense over the vocabulary, with
 * prompt positions (-1) counted in neither term; every divergence of the registry, T = 2, alpha mixing,
 * and the gradient against finite differences for forward and reverse KL. The on-policy loss (GKD): T^2 *
 * the mean of D over the generated positions only, no CE and no alpha, for every divergence, and its
 * gradient for generalized_jsd. Stored top-k + tail scores: for every divergence, k = V gives the dense
 * loss (of log-softmaxed logits; of the raw ones in probability space) and k < V the float64 k + 1 bucket
 * rule, with its gradient against finite differences.
 */
import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { makeRng } from "../../src/domain/Random.js"
import { divergenceNames, ObjectiveSpec } from "../../src/losses/ObjectiveSpec.js"
import { divergences } from "../../src/losses/Divergences.js"
import {
  describeTokenObjective,
  describeTopkTokenObjective,
  onPolicyDistillationLoss,
  tokenDistillationLoss,
  tokenDivergence,
  topkTokenDistillationLoss,
  topkTokenDivergence
} from "../../src/losses/tokenKd.js"
import { logSoftmax, logSumExp, numericalGradient, refDenseBuckets, refDivergence, refTopkBuckets } from "./reference.js"

const [B, T, V] = [2, 3, 5]
const rng = makeRng(11)
const student = Array.from({ length: B * T * V }, () => rng.normal() * 2)
const teacher = Array.from({ length: B * T * V }, () => rng.normal() * 2)
const targets = [4, -1, 0, 2, 2, -1] // two prompt positions, counted in neither term
const row = (z: ReadonlyArray<number>, i: number) => z.slice(i * V, (i + 1) * V)
const counted = targets.filter((y) => y >= 0).length
const spec = (o: object) => Schema.decodeSync(ObjectiveSpec)(o as never)

/** The objective from its formula, in float64. */
const refLoss = (s: ObjectiveSpec, zs: ReadonlyArray<number>): number => {
  let d = 0
  let ce = 0
  targets.forEach((y, i) => {
    if (y < 0) return
    d += refDivergence(s.divergence, refDenseBuckets(row(teacher, i), row(zs, i), s.temperature), s)
    ce -= logSoftmax(row(zs, i))[y]!
  })
  const factor = s.scaleT2 ? s.temperature ** 2 : 1
  return s.alpha * factor * (d / counted) + (1 - s.alpha) * (ce / counted)
}

const loss = (s: ObjectiveSpec, zs: ReadonlyArray<number>): number =>
  tf.tidy(() =>
    tokenDistillationLoss(s, tf.tensor3d(zs as Array<number>, [B, T, V]), tf.tensor2d(targets, [B, T], "int32"), tf.tensor3d(teacher, [B, T, V])).dataSync()[0]!
  )

describe("tokenDistillationLoss", () => {
  for (const divergence of divergenceNames) {
    it(`${divergence}: alpha * T^2 * mean per counted token of D + (1 - alpha) * CE (T = 2, float64 reference)`, () => {
      for (const [temperature, alpha] of [[2, 0.7], [1, 1], [2, 0]] as const) {
        const s = spec({ divergence, temperature, alpha })
        assert.closeTo(loss(s, student), refLoss(s, student), 2e-4 * Math.max(1, Math.abs(refLoss(s, student))), `T ${temperature} alpha ${alpha}`)
      }
    })
  }

  it("is zero at masked positions per token, and the CE alone without a teacher or with divergence none", () => {
    const s = spec({ divergence: "reverse_kl", temperature: 2, alpha: 0.5 })
    const d = tf.tidy(() =>
      Array.from(tokenDivergence(s, tf.tensor3d(student, [B, T, V]), tf.tensor3d(teacher, [B, T, V]), tf.tensor2d(targets, [B, T], "int32")).dataSync())
    )
    targets.forEach((y, i) => {
      const want = y < 0 ? 0 : refDivergence("reverse_kl", refDenseBuckets(row(teacher, i), row(student, i), 2), s)
      assert.closeTo(d[i]!, want, 1e-4)
    })
    const ce = refLoss(spec({ divergence: "forward_kl", alpha: 0 }), student)
    const alone = tf.tidy(() => tokenDistillationLoss(s, tf.tensor3d(student, [B, T, V]), tf.tensor2d(targets, [B, T], "int32")).dataSync()[0]!)
    assert.closeTo(alone, ce, 1e-5)
    assert.closeTo(loss(spec({ divergence: "none" }), student), ce, 1e-5)
  })

  for (const divergence of ["forward_kl", "reverse_kl"] as const) {
    it(`${divergence}: the gradient w.r.t. the student logits matches finite differences`, () => {
      const s = spec({ divergence, temperature: 2, alpha: 0.6 })
      const before = tf.memory().numTensors
      const g = tf.tidy(() => {
        const y = tf.tensor2d(targets, [B, T], "int32")
        const zt = tf.tensor3d(teacher, [B, T, V])
        return Array.from(tf.grad((z: tf.Tensor) => tokenDistillationLoss(s, z as tf.Tensor3D, y, zt))(tf.tensor3d(student, [B, T, V])).dataSync())
      })
      assert.strictEqual(tf.memory().numTensors, before)
      const rows = Array.from({ length: B * T }, (_, i) => row(student, i))
      const numeric = numericalGradient((m) => refLoss(s, m.flat()), rows).flat()
      numeric.forEach((n, i) => assert.closeTo(g[i]!, n, 1e-4))
    })
  }

  it("is described per token in nodes.info", () => {
    const d = describeTokenObjective(spec({ divergence: "reverse_kl", temperature: 2, alpha: 0.5 }))
    assert.strictEqual(d.reduction, "per token")
    assert.strictEqual(d.divergence, "reverse_kl")
    assert.strictEqual(d.temperature, 2)
    assert.strictEqual(d.alpha, 0.5)
    assert.strictEqual(d.distillWeight, 2)
    assert.match(String(d.direction), /student/)
    assert.match(String(d.loss), /mean over counted target tokens of reverse_kl/)
  })
})

describe("onPolicyDistillationLoss", () => {
  // The student's samples of one batch: prompts of 2 and 1 tokens, the second row padded at its end.
  const generated = [-1, 3, 1, 0, 2, -1]
  const refOnPolicy = (s: ObjectiveSpec, zs: ReadonlyArray<number>): number => {
    let d = 0
    generated.forEach((y, i) => {
      if (y >= 0) d += refDivergence(s.divergence, refDenseBuckets(row(teacher, i), row(zs, i), s.temperature), s)
    })
    return (s.scaleT2 ? s.temperature ** 2 : 1) * (d / generated.filter((y) => y >= 0).length)
  }
  const onPolicy = (s: ObjectiveSpec, zs: ReadonlyArray<number>): number =>
    tf.tidy(
      () =>
        onPolicyDistillationLoss(s, tf.tensor3d(zs as Array<number>, [B, T, V]), tf.tensor2d(generated, [B, T], "int32"), tf.tensor3d(teacher, [B, T, V])).dataSync()[0]!
    )

  for (const divergence of divergenceNames) {
    it(`${divergence}: T^2 * mean of D over the generated positions only, whatever alpha (float64 reference)`, () => {
      for (const [temperature, alpha, beta] of [[2, 0.3, 0.2], [1, 1, 0.9]] as const) {
        const s = spec({ divergence, temperature, alpha, beta })
        const want = refOnPolicy(s, student)
        assert.closeTo(onPolicy(s, student), want, 2e-4 * Math.max(1, Math.abs(want)), `T ${temperature} alpha ${alpha}`)
      }
    })
  }

  it("generalized_jsd: the gradient w.r.t. the student logits matches finite differences, and is zero at masked positions", () => {
    const s = spec({ divergence: "generalized_jsd", beta: 0.3, temperature: 2 })
    const g = tf.tidy(() => {
      const y = tf.tensor2d(generated, [B, T], "int32")
      const zt = tf.tensor3d(teacher, [B, T, V])
      return Array.from(tf.grad((z: tf.Tensor) => onPolicyDistillationLoss(s, z as tf.Tensor3D, y, zt))(tf.tensor3d(student, [B, T, V])).dataSync())
    })
    const rows = Array.from({ length: B * T }, (_, i) => row(student, i))
    const numeric = numericalGradient((m) => refOnPolicy(s, m.flat()), rows).flat()
    numeric.forEach((n, i) => assert.closeTo(g[i]!, n, 1e-4))
    generated.forEach((y, i) => {
      if (y < 0) for (let c = 0; c < V; c++) assert.strictEqual(g[i * V + c], 0)
    })
  })
})

describe("topkTokenDistillationLoss", () => {
  /** The stored scores of the teacher rows in float64: top-k log-probs, largest first, and the tail's log-mass. */
  const scoresOf = (k: number) => {
    const rows = Array.from({ length: B * T }, (_, i) => {
      const lp = logSoftmax(row(teacher, i))
      const order = lp.map((_, c) => c).sort((a, b) => lp[b]! - lp[a]!)
      return { indices: order.slice(0, k), values: order.slice(0, k).map((c) => lp[c]!), tailLogSumExp: logSumExp(order.slice(k).map((c) => lp[c]!)) }
    })
    return rows
  }
  const topkOf = (k: number) => {
    const rows = scoresOf(k)
    return {
      indices: tf.tensor3d(rows.flatMap((r) => r.indices), [B, T, k], "int32"),
      logProbs: tf.tensor3d(rows.flatMap((r) => r.values), [B, T, k]),
      tailLogProb: tf.tensor2d(rows.map((r) => r.tailLogSumExp), [B, T])
    }
  }
  const topkLoss = (s: ObjectiveSpec, zs: ReadonlyArray<number>, k: number): number =>
    tf.tidy(() => topkTokenDistillationLoss(s, tf.tensor3d(zs as Array<number>, [B, T, V]), tf.tensor2d(targets, [B, T], "int32"), topkOf(k)).dataSync()[0]!)
  const logSoftmaxRows = (z: ReadonlyArray<number>) => Array.from({ length: B * T }, (_, i) => logSoftmax(row(z, i))).flat()
  const denseLoss = (s: ObjectiveSpec, zs: ReadonlyArray<number>, zt: ReadonlyArray<number>): number =>
    tf.tidy(() =>
      tokenDistillationLoss(s, tf.tensor3d(zs as Array<number>, [B, T, V]), tf.tensor2d(targets, [B, T], "int32"), tf.tensor3d(zt as Array<number>, [B, T, V])).dataSync()[0]!
    )
  /** The k + 1 bucket rule in float64, on the student's log-probs. */
  const refTopkLoss = (s: ObjectiveSpec, zs: ReadonlyArray<number>, k: number): number => {
    const rows = scoresOf(k)
    let d = 0
    let ce = 0
    targets.forEach((y, i) => {
      if (y < 0) return
      const lq = logSoftmax(row(zs, i))
      d += refDivergence(s.divergence, refTopkBuckets(rows[i]!, lq, s.temperature), s)
      ce -= lq[y]!
    })
    return s.alpha * (s.scaleT2 ? s.temperature ** 2 : 1) * (d / counted) + (1 - s.alpha) * (ce / counted)
  }
  const logitSpace = (s: ObjectiveSpec) => s.divergence === "mse_logits" || (s.divergence === "cosine" && s.space === "logits")
  const settings = [[2, 0.7, "probs"], [1, 1, "logits"]] as const

  for (const { name: divergence } of divergences) {
    it(`${divergence}: k = V equals the dense loss, k < V the float64 k + 1 bucket rule`, () => {
      for (const [temperature, alpha, space] of settings) {
        const s = spec({ divergence, temperature, alpha, space, beta: 0.3 })
        const what = `T ${temperature} alpha ${alpha} space ${space}`
        const full = topkLoss(s, student, V)
        const dense = denseLoss(s, logSoftmaxRows(student), logSoftmaxRows(teacher))
        assert.closeTo(full, dense, 2e-4 * Math.max(1, Math.abs(dense)), `k = V, ${what}`)
        if (!logitSpace(s)) assert.closeTo(full, denseLoss(s, student, teacher), 2e-4 * Math.max(1, Math.abs(dense)), `k = V raw logits, ${what}`)
        for (const k of [1, 2, V - 1]) {
          const want = refTopkLoss(s, student, k)
          assert.closeTo(topkLoss(s, student, k), want, 2e-4 * Math.max(1, Math.abs(want)), `k = ${k}, ${what}`)
        }
      }
    })
  }

  it("forward_kl, k < V: the gradient w.r.t. the student logits matches finite differences and is zero at masked positions", () => {
    const s = spec({ divergence: "forward_kl", temperature: 2, alpha: 0.6 })
    const before = tf.memory().numTensors
    const g = tf.tidy(() => {
      const y = tf.tensor2d(targets, [B, T], "int32")
      const topk = topkOf(2)
      return Array.from(tf.grad((z: tf.Tensor) => topkTokenDistillationLoss(s, z as tf.Tensor3D, y, topk))(tf.tensor3d(student, [B, T, V])).dataSync())
    })
    assert.strictEqual(tf.memory().numTensors, before)
    const rows = Array.from({ length: B * T }, (_, i) => row(student, i))
    const numeric = numericalGradient((m) => refTopkLoss(s, m.flat(), 2), rows).flat()
    numeric.forEach((n, i) => assert.closeTo(g[i]!, n, 1e-4))
    targets.forEach((y, i) => {
      if (y < 0) for (let c = 0; c < V; c++) assert.strictEqual(g[i * V + c], 0)
    })
  })

  it("stays finite where the top k hold all the mass (tail -Infinity with k < V), and is 0 at masked positions", () => {
    const s = spec({ divergence: "reverse_kl", temperature: 2, alpha: 0.5 })
    const d = tf.tidy(() => {
      const topk = topkOf(2)
      const tail = tf.fill([B, T], -Infinity) as tf.Tensor2D
      const y = tf.tensor2d(targets, [B, T], "int32")
      return Array.from(topkTokenDivergence(s, tf.tensor3d(student, [B, T, V]), { ...topk, tailLogProb: tail }, y).dataSync())
    })
    d.forEach((x, i) => {
      assert.isTrue(Number.isFinite(x), `position ${i}`)
      if (targets[i]! < 0) assert.strictEqual(x, 0)
    })
    const described = describeTopkTokenObjective(s, 8)
    assert.match(String(described.loss), /top-8 \+ tail buckets/)
    assert.strictEqual(described.reduction, "per token")
  })
})
