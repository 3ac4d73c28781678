/**
 * Plain-array (float64) reference implementations of every loss in src/losses, written from the
 * formulas in the doc comments, plus the helpers the tests share: seeded random rows, the top-k
 * encoding of a dense teacher, and central finite differences.
 */
import * as tf from "@tensorflow/tfjs"
import { makeRng, type Rng } from "../../src/domain/Random.js"

export type Row = ReadonlyArray<number>
export type Matrix = ReadonlyArray<Row>

export const logSumExp = (z: Row): number => {
  const max = Math.max(...z)
  if (max === -Infinity) return -Infinity
  return max + Math.log(z.reduce((s, x) => s + Math.exp(x - max), 0))
}
export const logSoftmax = (z: Row): Array<number> => {
  const lse = logSumExp(z)
  return z.map((x) => x - lse)
}
export const softmax = (z: Row): Array<number> => logSoftmax(z).map(Math.exp)

export const kl = (p: Row, q: Row): number => p.reduce((s, pi, i) => (pi === 0 ? s : s + pi * Math.log(pi / q[i]!)), 0)
export const mix = (a: Row, b: Row, w: number): Array<number> => a.map((ai, i) => w * ai + (1 - w) * b[i]!)
const dot = (a: Row, b: Row): number => a.reduce((s, ai, i) => s + ai * b[i]!, 0)
export const cosineDistance = (a: Row, b: Row): number =>
  1 - dot(a, b) / (Math.max(Math.sqrt(dot(a, a)), 1e-12) * Math.max(Math.sqrt(dot(b, b)), 1e-12))

/** One example's buckets: probabilities over the compared buckets and the compared logits at T. */
export interface RefBuckets {
  readonly p: Array<number>
  readonly q: Array<number>
  readonly zt: Array<number>
  readonly zs: Array<number>
}

export const refDenseBuckets = (teacher: Row, student: Row, t: number): RefBuckets => {
  const zt = teacher.map((x) => x / t)
  const zs = student.map((x) => x / t)
  return { p: softmax(zt), q: softmax(zs), zt, zs }
}

/** The top-k encoding of one dense teacher row at T = 1 (indices largest first). */
export interface RefTopk {
  readonly indices: Array<number>
  readonly values: Array<number>
  readonly tailLogSumExp: number
}

export const refTopk = (teacher: Row, k: number): RefTopk => {
  const order = teacher.map((_, i) => i).sort((a, b) => teacher[b]! - teacher[a]!)
  const top = order.slice(0, k)
  const rest = order.slice(k)
  return {
    indices: top,
    values: top.map((i) => teacher[i]!),
    tailLogSumExp: logSumExp(rest.map((i) => teacher[i]!))
  }
}

/** The top-k bucket rule of src/losses/Buckets.ts, from its doc comment. */
export const refTopkBuckets = (topk: RefTopk, student: Row, t: number): RefBuckets => {
  const c = student.length
  const k = topk.indices.length
  const zt = topk.values.map((v) => v / t)
  const zs = topk.indices.map((i) => student[i]! / t)
  if (k === c) return { p: softmax(zt), q: softmax(zs), zt, zs }
  const each = topk.tailLogSumExp - Math.log(c - k)
  const teacherTail = logSumExp(Array.from({ length: c - k }, () => each / t))
  const inTop = new Set(topk.indices)
  const studentTail = logSumExp(student.filter((_, i) => !inTop.has(i)).map((x) => x / t))
  return { p: softmax([...zt, teacherTail]), q: softmax([...zs, studentTail]), zt, zs }
}

export interface RefParams {
  readonly beta: number
  readonly skew: number
  readonly space: "logits" | "probs"
}

/** D(p, q) of every registered divergence, from its formula. */
export const refDivergence = (name: string, b: RefBuckets, params: RefParams): number => {
  const { p, q } = b
  switch (name) {
    case "forward_kl":
      return kl(p, q)
    case "reverse_kl":
      return kl(q, p)
    case "jsd": {
      const m = mix(p, q, 0.5)
      return 0.5 * kl(p, m) + 0.5 * kl(q, m)
    }
    case "generalized_jsd": {
      const beta = params.beta
      if (beta === 0) return kl(p, q)
      if (beta === 1) return kl(q, p)
      const m = mix(p, q, beta)
      return (beta * kl(p, m) + (1 - beta) * kl(q, m)) / (beta * (1 - beta))
    }
    case "tvd":
      return 0.5 * p.reduce((s, pi, i) => s + Math.abs(pi - q[i]!), 0)
    case "skew_kl":
      return kl(p, mix(p, q, params.skew))
    case "skew_reverse_kl":
      return kl(q, mix(q, p, params.skew))
    case "mse_logits":
      return b.zs.reduce((s, x, i) => s + (x - b.zt[i]!) ** 2, 0) / b.zs.length
    case "cosine":
      return params.space === "logits" ? cosineDistance(b.zt, b.zs) : cosineDistance(p, q)
    default:
      throw new Error(`no reference for ${name}`)
  }
}

export const mean = (xs: Row): number => xs.reduce((a, b) => a + b, 0) / xs.length

/** Central finite differences of f at x (float64), step h. */
export const numericalGradient = (f: (x: Matrix) => number, x: Matrix, h = 1e-5): Array<Array<number>> =>
  x.map((row, i) =>
    row.map((_, j) => {
      const shifted = (delta: number) => x.map((r, a) => (a === i ? r.map((v, b) => (b === j ? v + delta : v)) : r))
      return (f(shifted(h)) - f(shifted(-h))) / (2 * h)
    })
  )

export const randomMatrix = (rng: Rng, rows: number, cols: number, scale = 1): Array<Array<number>> =>
  Array.from({ length: rows }, () => Array.from({ length: cols }, () => scale * rng.normal()))

export { makeRng }

/** The top-k teacher tensors for a batch of dense teacher rows. */
export const topkTensors = (teacher: Matrix, k: number) => {
  const rows = teacher.map((row) => refTopk(row, k))
  return {
    indices: tf.tensor2d(rows.map((r) => r.indices), [teacher.length, k], "int32"),
    values: tf.tensor2d(rows.map((r) => r.values), [teacher.length, k]),
    tailLogSumExp: tf.tensor1d(rows.map((r) => r.tailLogSumExp))
  }
}

/** Asserts |a - b| <= atol + rtol |b| elementwise, with a readable message. */
export const assertClose = (actual: Row, expected: Row, atol: number, rtol: number, what: string): void => {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} vs ${expected.length}`)
  actual.forEach((a, i) => {
    const e = expected[i]!
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`${what}[${i}]: got ${a}, expected ${e} (atol ${atol}, rtol ${rtol})`)
    }
  })
}

/** A (rows, cols) float32 tensor from a plain matrix. */
export const tensor2d = (m: Matrix): tf.Tensor2D => tf.tensor2d(m as Array<Array<number>>)
