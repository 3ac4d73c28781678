/**
 * FitNets hint loss (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets"): a student hidden layer,
 * mapped to the teacher's width Dt by a learned linear projection that lives with the model, is
 * regressed onto the teacher's hint layer.
 *   mse:    (1 / (B Dt)) sum_b sum_j (s_bj - t_bj)^2   (FitNets' 1/2 ||t - r(s)||^2, averaged over B and Dt)
 *   cosine: (1 / B) sum_b (1 - cos(t_b, s_b))          (direction only, blind to the feature scale)
 */
import * as tf from "@tensorflow/tfjs"
import { cosineDistance } from "./Divergence.js"

export type HintKind = "mse" | "cosine"

/** () the hint loss between teacher features (B, Dt) and projected student features (B, Dt). */
export const hintLoss = (kind: HintKind, teacherFeatures: tf.Tensor2D, studentProjected: tf.Tensor2D): tf.Scalar =>
  tf.tidy(() => {
    const [tb, td] = teacherFeatures.shape
    const [sb, sd] = studentProjected.shape
    if (tb !== sb || td !== sd) {
      throw new RangeError(`hint loss needs equal shapes: teacher (${tb}, ${td}), projected student (${sb}, ${sd})`)
    }
    return kind === "mse"
      ? tf.mean(tf.square(tf.sub(studentProjected, teacherFeatures)))
      : tf.mean(cosineDistance(teacherFeatures, studentProjected))
  })
