/**
 * What a divergence compares: the teacher's and the student's distributions at temperature T over a
 * set of buckets, and the logits that logit-space divergences compare. A dense teacher gives C buckets
 * (the classes); a sparse one gives the buckets of the top-k rule below.
 *
 * Sparse (top-k) teacher rule. The teacher is stored at T = 1 as its k largest logits `values` (B, k)
 * at class `indices` (B, k) and `tailLogSumExp` (B), the log-sum-exp of the other C - k logits
 * (-Infinity when k = C). At temperature T:
 *   - the C - k tail logits are taken as equal, each z_tail = tailLogSumExp - log(C - k), so the tail
 *     bucket's logit at T is log(C - k) + z_tail / T (at T = 1 this is exactly tailLogSumExp);
 *   - the teacher distribution is softmax over k + 1 buckets: [values / T, tail bucket logit];
 *   - the student is aggregated the same way: its probabilities at the teacher's top-k indices, and one
 *     tail bucket holding the rest of its mass (the log-sum-exp of its other C - k logits at T);
 *   - every probability-space divergence is computed on those k + 1 buckets; logit-space ones
 *     (mse_logits, cosine on logits) compare the k gathered logits.
 * When k = C there is no tail bucket and the result equals the dense one (the classes are only
 * permuted); when k = C - 1 the single tail class is exact too, so probability-space divergences equal
 * the dense ones from k = C - 1 on. At T = 1 the teacher buckets are exact for any k.
 */
import * as tf from "@tensorflow/tfjs"

/** The teacher side of a batch: dense logits or the sparse top-k form, both at T = 1. */
export type TeacherBatch =
  | { readonly logits: tf.Tensor2D }
  | {
      readonly topk: {
        /** (B, k) int32 class indices of the k largest teacher logits. */
        readonly indices: tf.Tensor2D
        /** (B, k) those logits at T = 1. */
        readonly values: tf.Tensor2D
        /** (B) log-sum-exp at T = 1 of the C - k other logits; -Infinity when k = C. */
        readonly tailLogSumExp: tf.Tensor1D
      }
    }

export interface Buckets {
  /** (B, K) teacher log-probs at T: K = C dense, k + 1 sparse (k when k = C). */
  readonly teacherLogProbs: tf.Tensor2D
  /** (B, K) student log-probs at T over the same buckets. */
  readonly studentLogProbs: tf.Tensor2D
  /** (B, L) teacher logits / T: L = C dense, the k top-k logits sparse. */
  readonly teacherLogits: tf.Tensor2D
  /** (B, L) student logits / T at the same classes. */
  readonly studentLogits: tf.Tensor2D
}

/** Masks out the top-k classes before the student's tail log-sum-exp: exp(-1e9) is exactly 0. */
const maskedLogit = 1e9
/** A teacher tail that is -Infinity with k < C (all tail logits -Infinity) is clamped to this. */
const tailFloor = -1e9

/**
 * (B, k) x[pairs[b, j]] for (row, class) pairs, with a scatterND as its gradient: tf.gather's own
 * gradient needs UnsortedSegmentSum, which the wasm backend lacks, and gathering by one-hot products
 * would cost B k C.
 */
const gatherPairs = (x: tf.Tensor2D, pairs: tf.Tensor3D): tf.Tensor2D => {
  const shape = x.shape
  const gather = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc]
    save([pairs]) // kept for the backward pass, which runs after the caller's tidy has let go of `pairs`
    return {
      value: tf.gatherND(input, pairs) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, saved: Array<tf.Tensor>) => tf.scatterND(saved[0]!, dy, shape)
    }
  })
  return gather(x)
}

/** Dense buckets: the C classes. Allocates tensors: call inside tf.tidy. */
export const denseBuckets = (teacherLogits: tf.Tensor2D, studentLogits: tf.Tensor2D, temperature: number): Buckets => {
  const teacherT = tf.div(teacherLogits, temperature) as tf.Tensor2D // (B, C) teacher logits at T
  const studentT = tf.div(studentLogits, temperature) as tf.Tensor2D // (B, C) student logits at T
  return {
    teacherLogProbs: tf.logSoftmax(teacherT),
    studentLogProbs: tf.logSoftmax(studentT),
    teacherLogits: teacherT,
    studentLogits: studentT
  }
}

/** Top-k buckets by the rule in this module's doc comment. Allocates tensors: call inside tf.tidy. */
export const topkBuckets = (
  topk: { readonly indices: tf.Tensor2D; readonly values: tf.Tensor2D; readonly tailLogSumExp: tf.Tensor1D },
  studentLogits: tf.Tensor2D,
  temperature: number
): Buckets => {
  const [batch, numClasses] = studentLogits.shape
  const k = topk.indices.shape[1]
  if (k > numClasses) throw new RangeError(`top-k teacher has k = ${k} > ${numClasses} student classes`)
  const indices = topk.indices.dtype === "int32" ? topk.indices : tf.cast(topk.indices, "int32")
  const studentT = tf.div(studentLogits, temperature) as tf.Tensor2D // (B, C) student logits at T
  const rows = tf.tile(tf.range(0, batch, 1, "int32").reshape([batch, 1]), [1, k])
  const pairs = tf.stack([rows, indices], 2) as tf.Tensor3D // (B, k, 2) (row, class) of each top-k entry
  const studentTopk = gatherPairs(studentT, pairs) // (B, k) student logits at the teacher's classes
  const teacherTopk = tf.div(topk.values, temperature) as tf.Tensor2D // (B, k) teacher logits at T
  if (k === numClasses) {
    return {
      teacherLogProbs: tf.logSoftmax(teacherTopk),
      studentLogProbs: tf.logSoftmax(studentTopk),
      teacherLogits: teacherTopk,
      studentLogits: studentTopk
    }
  }
  const logTail = Math.log(numClasses - k)
  // (B, 1) teacher tail bucket at T: C - k equal logits z_tail = lse - log(C - k), so log(C - k) + z_tail / T
  const tailLse = tf.maximum(topk.tailLogSumExp, tailFloor)
  const teacherTail = tf.add(tf.div(tf.sub(tailLse, logTail), temperature), logTail).reshape([batch, 1])
  // (B, C) 1 at the teacher's top-k classes; the student's tail is the log-sum-exp of the other classes
  const mask = tf.scatterND(pairs, tf.ones([batch, k]), [batch, numClasses])
  const studentTail = tf.logSumExp(tf.sub(studentT, tf.mul(mask, maskedLogit)), 1, true) // (B, 1)
  return {
    teacherLogProbs: tf.logSoftmax(tf.concat([teacherTopk, teacherTail], 1) as tf.Tensor2D),
    studentLogProbs: tf.logSoftmax(tf.concat([studentTopk, studentTail], 1) as tf.Tensor2D),
    teacherLogits: teacherTopk,
    studentLogits: studentTopk
  }
}

/** The buckets for either form of teacher. Allocates tensors: call inside tf.tidy. */
export const toBuckets = (teacher: TeacherBatch, studentLogits: tf.Tensor2D, temperature: number): Buckets =>
  "logits" in teacher
    ? denseBuckets(teacher.logits, studentLogits, temperature)
    : topkBuckets(teacher.topk, studentLogits, temperature)
