/**
 * The picture users expect from forward vs reverse KL: a bimodal teacher over 30 ordered bins and a
 * unimodal student (a discretised Gaussian, softmax of -(i - mu)^2 / (2 s^2)) fitted by Adam. Forward
 * KL(teacher || student) makes the student cover both bumps; reverse KL(student || teacher) makes it
 * lock onto one.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { objectiveLoss, ObjectiveSpec } from "../../src/losses/Objective.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const bins = 30
const modes = [7, 22] as const
const width = 2
const teacherProbs = Array.from({ length: bins }, (_, i) =>
  modes.reduce((s, m) => s + Math.exp(-((i - m) ** 2) / (2 * width * width)), 0)
)
const total = teacherProbs.reduce((a, b) => a + b, 0)
const teacherLogits = teacherProbs.map((p) => Math.log(p / total))

/** Fits the student's mean and log-std; returns them and the student's probabilities. */
const fit = (divergence: "forward_kl" | "reverse_kl", mu0: number, steps: number) => {
  const spec = Schema.decodeUnknownSync(ObjectiveSpec)({ divergence, alpha: 1, temperature: 1 })
  const mu = tf.variable(tf.scalar(mu0))
  const logStd = tf.variable(tf.scalar(Math.log(3)))
  const teacher = tf.tensor2d([teacherLogits])
  const unlabelled = tf.tensor1d([-1], "int32")
  const positions = tf.range(0, bins)
  // (1, bins) student logits: -(i - mu)^2 / (2 s^2)
  const studentLogits = () => {
    const variance = tf.exp(tf.mul(2, logStd))
    return tf.neg(tf.div(tf.square(tf.sub(positions, mu)), tf.mul(2, variance))).reshape([1, bins]) as tf.Tensor2D
  }
  // Adam moves every parameter by about its learning rate per step; at 0.2 on the log-std the student
  // would widen over the gap faster than its mean moves and stall in a broad local minimum of reverse KL
  // (a near-uniform student on this bounded grid), so the log-std learns ten times slower than the mean.
  const muOptimizer = tf.train.adam(0.2)
  const stdOptimizer = tf.train.adam(0.02)
  const step = () => {
    const { value, grads } = tf.variableGrads(
      () => objectiveLoss(spec, studentLogits(), unlabelled, { logits: teacher }),
      [mu, logStd]
    )
    muOptimizer.applyGradients([{ name: mu.name, tensor: grads[mu.name]! }])
    stdOptimizer.applyGradients([{ name: logStd.name, tensor: grads[logStd.name]! }])
    tf.dispose([value, ...Object.values(grads)])
  }
  step()
  // the optimizers allocate their moments on the first step; after that a step must not add tensors
  const before = tf.memory().numTensors
  for (let i = 1; i < steps; i++) step()
  assert.strictEqual(tf.memory().numTensors, before)
  const q = tf.tidy(() => Array.from(tf.softmax(studentLogits()).dataSync()))
  const result = { mu: mu.dataSync()[0]!, std: Math.exp(logStd.dataSync()[0]!), q }
  muOptimizer.dispose()
  stdOptimizer.dispose()
  tf.dispose([mu, logStd, teacher, unlabelled, positions])
  return result
}

/** The student's mass within 4 bins (two bump widths) of each teacher mode. */
const bumpMass = (q: ReadonlyArray<number>) =>
  modes.map((m) => q.reduce((s, qi, i) => (Math.abs(i - m) <= 4 ? s + qi : s), 0))
/** The student's mass on each half of the grid. */
const halfMass = (q: ReadonlyArray<number>) =>
  [q.slice(0, bins / 2), q.slice(bins / 2)].map((h) => h.reduce((a, b) => a + b, 0))

describe("forward vs reverse KL on a bimodal teacher", () => {
  it("forward KL covers both modes", () => {
    const { mu, std, q } = fit("forward_kl", 12, 300)
    const [left, right] = bumpMass(q)
    const label = `mu ${mu}, std ${std}, bump masses ${left}, ${right}`
    // moment matching: mean between the bumps, spread about sqrt(2^2 + 7.5^2) = 7.8 bins (the std
    // parameter is larger than that because the grid truncates the Gaussian)
    assert.approximately(mu, (modes[0] + modes[1]) / 2, 0.5, label)
    assert.isAbove(std, 6, label)
    assert.isAbove(left!, 0.25, label)
    assert.isAbove(right!, 0.25, label)
    // and it puts mass in the gap between them, where the teacher has almost none
    const gap = q.slice(12, 18).reduce((a, b) => a + b, 0)
    const teacherGap = teacherProbs.slice(12, 18).reduce((a, b) => a + b, 0) / total
    assert.isAbove(gap, 0.15, label)
    assert.isBelow(teacherGap, 0.02)
  })

  for (const mu0 of [13, 16]) {
    it(`reverse KL locks onto one mode (start at ${mu0})`, () => {
      const { mu, std, q } = fit("reverse_kl", mu0, 300)
      const bumps = bumpMass(q)
      const halves = halfMass(q)
      const label = `mu ${mu}, std ${std}, bump masses ${bumps.join(", ")}`
      // it settles on the mode nearer its start, with the teacher bump's own width
      const nearest = mu0 < 14.5 ? 0 : 1
      assert.approximately(mu, modes[nearest], 0.5, label)
      assert.approximately(std, width, 0.5, label)
      assert.isAbove(bumps[nearest]!, 0.95, label)
      assert.isBelow(bumps[1 - nearest]!, 0.001, label)
      assert.isAbove(halves[nearest]!, 0.999, label)
    })
  }
})
