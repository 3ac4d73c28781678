/**
 * Relational knowledge distillation (Park, Kim, Lu & Cho 2019, "Relational Knowledge Distillation"):
 * the student matches the geometry of a batch of embeddings rather than the embeddings, so teacher (Dt)
 * and student (Ds) widths may differ. With e_b the embeddings of one network and h the smooth-L1 (Huber,
 * delta 1) penalty h(x) = 0.5 x^2 for |x| < 1, |x| - 0.5 otherwise:
 *   distance: psi_D(i, j) = ||e_i - e_j|| / mu, mu = the mean distance over the B (B - 1) pairs i != j;
 *             loss = mean over all B^2 (i, j) of h(psi_D^student - psi_D^teacher)
 *   angle:    psi_A(i, j, k) = <(e_i - e_j) / ||e_i - e_j||, (e_k - e_j) / ||e_k - e_j||> (vertex j);
 *             loss = mean over all B^3 (i, j, k) of h(psi_A^student - psi_A^teacher)
 * As in the authors' code the means run over all pairs / triples; degenerate ones (i = j, or i = j or
 * k = j for angles, or a side of (near) zero length) are 0 on both sides and only dilute the mean.
 * Teacher embeddings are treated as constants. Angles come from the Gram matrix (see `angles`).
 */
import * as tf from "@tensorflow/tfjs"

/** Squared distances below this are clamped: it keeps sqrt's gradient finite for coincident points. */
const squaredFloor = 1e-12
/** Mean distances below this are clamped before dividing by them. */
const normFloor = 1e-12

/** Elementwise smooth-L1 with delta 1, written with min so that its gradient is x inside, sign(x) outside. */
export const smoothL1 = (x: tf.Tensor): tf.Tensor =>
  tf.tidy(() => {
    const a = tf.abs(x)
    const inner = tf.minimum(a, 1)
    return tf.add(tf.mul(tf.square(inner), 0.5), tf.sub(a, inner))
  })

/** (B, B) Euclidean distances, 0 on the diagonal, from the Gram matrix. */
const pairwiseDistances = (e: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => {
    const batch = e.shape[0]
    const norms = tf.sum(tf.square(e), 1) // (B) squared norms
    const gram = tf.matMul(e, e, false, true) // (B, B)
    const squared = tf.sub(tf.add(norms.reshape([batch, 1]), norms.reshape([1, batch])), tf.mul(gram, 2))
    const offDiagonal = tf.sub(1, tf.eye(batch))
    return tf.mul(tf.sqrt(tf.maximum(squared, squaredFloor)), offDiagonal) as tf.Tensor2D
  })

/** (B, B) distances divided by their mean over the B (B - 1) off-diagonal pairs. */
const normalisedDistances = (e: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => {
    const batch = e.shape[0]
    const d = pairwiseDistances(e)
    const mean = tf.div(tf.sum(d), batch * (batch - 1))
    return tf.div(d, tf.maximum(mean, normFloor)) as tf.Tensor2D
  })

/**
 * A side e_i - e_j whose squared length is below this share of |e_i|^2 + |e_j|^2 counts as degenerate
 * (its angles are 0, as for i = j): the Gram-matrix lengths below are only accurate to about float
 * epsilon times the squared norms, so shorter sides would give cosines of rounding noise.
 */
const degenerateShare = 1e-6

/**
 * (B, B, B) cosines of the angle at vertex j between e_i and e_k: indexed [j, i, k]. From the Gram
 * matrix G = e e^T, <e_i - e_j, e_k - e_j> = G_ik - G_ij - G_jk + G_jj and |e_i - e_j|^2 = G_ii + G_jj
 * - 2 G_ij, so the cost is O(B^2 D + B^3) rather than the O(B^3 D) of normalising every difference
 * vector (128^3 x 800 multiply-adds per step for an 800-wide teacher). Rounding can push a cosine just
 * past +-1; it is clipped.
 */
const angles = (e: tf.Tensor2D): tf.Tensor3D =>
  tf.tidy(() => {
    const batch = e.shape[0]
    const norms = tf.sum(tf.square(e), 1) // (B) squared norms G_jj
    const gram = tf.matMul(e, e, false, true) // (B, B)
    const normSums = tf.add(norms.reshape([batch, 1]), norms.reshape([1, batch])) // (B, B) G_jj + G_ii
    const squared = tf.sub(normSums, tf.mul(gram, 2)) // (B, B) [j, i] = |e_i - e_j|^2
    // (B, B) 1 for a proper side, 0 for i = j or a degenerate one; masks are products (step's gradient
    // is 0), since the tape has no gradient for boolean ops
    const valid = tf.mul(tf.step(tf.sub(squared, tf.mul(normSums, degenerateShare))), tf.sub(1, tf.eye(batch)))
    // (B, B) [j, i] = 1 / |e_i - e_j|, 0 where degenerate (the 1 - valid keeps the sqrt away from 0)
    const inverse = tf.div(valid, tf.sqrt(tf.add(tf.mul(squared, valid), tf.sub(1, valid))))
    // (B, B, B) [j, i, k] = (G_ik - G_jk) - (G_ji - G_jj): two B^3 operations, the rest is B^2
    const dot = tf.sub(
      tf.sub(gram.reshape([1, batch, batch]), gram.reshape([batch, 1, batch])),
      tf.sub(gram, norms.reshape([batch, 1])).reshape([batch, batch, 1])
    )
    const cos = tf.mul(tf.mul(dot, inverse.reshape([batch, batch, 1])), inverse.reshape([batch, 1, batch]))
    return tf.clipByValue(cos, -1, 1) as tf.Tensor3D
  })

const checkBatch = (teacherEmb: tf.Tensor2D, studentEmb: tf.Tensor2D, name: string): void => {
  if (teacherEmb.shape[0] !== studentEmb.shape[0]) {
    const [t, s] = [teacherEmb.shape[0], studentEmb.shape[0]]
    throw new RangeError(`${name} needs one embedding per example on both sides: ${t} vs ${s}`)
  }
  if (teacherEmb.shape[0] < 2) throw new RangeError(`${name} needs a batch of at least 2, got ${teacherEmb.shape[0]}`)
}

/** () RKD distance-wise loss between teacher (B, Dt) and student (B, Ds) embeddings. */
export const rkdDistanceLoss = (teacherEmb: tf.Tensor2D, studentEmb: tf.Tensor2D): tf.Scalar =>
  tf.tidy(() => {
    checkBatch(teacherEmb, studentEmb, "rkdDistanceLoss")
    return tf.mean(smoothL1(tf.sub(normalisedDistances(studentEmb), normalisedDistances(teacherEmb))))
  })

/** () RKD angle-wise loss between teacher (B, Dt) and student (B, Ds) embeddings. */
export const rkdAngleLoss = (teacherEmb: tf.Tensor2D, studentEmb: tf.Tensor2D): tf.Scalar =>
  tf.tidy(() => {
    checkBatch(teacherEmb, studentEmb, "rkdAngleLoss")
    return tf.mean(smoothL1(tf.sub(angles(studentEmb), angles(teacherEmb))))
  })
