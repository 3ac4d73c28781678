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
 * k = j for angles) are 0 on both sides and only dilute the mean. Teacher embeddings are treated as
 * constants.
 */
import * as tf from "@tensorflow/tfjs"

/** Squared distances below this are clamped: it keeps sqrt's gradient finite for coincident points. */
const squaredFloor = 1e-12
/** Norms below this are clamped before normalising a difference vector (a zero one stays zero). */
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

/** (B, B, B) cosines of the angle at vertex j between e_i and e_k: indexed [j, i, k]. */
const angles = (e: tf.Tensor2D): tf.Tensor3D =>
  tf.tidy(() => {
    const [batch, width] = e.shape
    const diff = tf.sub(e.reshape([1, batch, width]), e.reshape([batch, 1, width])) // (B, B, D): [j, i] = e_i - e_j
    const norm = tf.sqrt(tf.maximum(tf.sum(tf.square(diff), 2, true), normFloor * normFloor)) // (B, B, 1)
    const unit = tf.div(diff, norm) as tf.Tensor3D
    return tf.matMul(unit, unit, false, true) // (B, B, B)
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
