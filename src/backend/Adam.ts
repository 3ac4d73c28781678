/**
 * The optimizer interface the trainer steps, and one Adam skeleton for the backends that update a
 * variable in one pass of their own (kernels/NativeAdam.ts, webgpu/Adam.ts): tfjs's AdamOptimizer
 * runs about ten element-wise kernels per variable and step, each reading and writing the whole
 * tensor. Same formula and defaults as tfjs:
 *   m ← β1 m + (1 - β1) g,  v ← β2 v + (1 - β2) g²,  θ ← θ - lr · (m / (1 - β1ᵗ)) / (√(v / (1 - β2ᵗ)) + ε)
 */
import * as tf from "@tensorflow/tfjs"

/** `learningRate` is read at every step, so a learning-rate schedule may change it between steps. */
export interface AdamHyper {
  learningRate: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
}

/** What the trainer needs of an optimizer (tfjs's optimizers fit it too). */
export interface StepOptimizer {
  applyGradients(grads: tf.NamedTensorMap): void
  dispose(): void
}

/** What a backend supplies to `makeAdamOptimizer`: its moment storage and its one-pass update. */
export interface AdamKernel<M> {
  /** Zeroed first and second moments for a variable of `size` elements. */
  readonly moments: (size: number) => M
  /** Writes the updated value of `variable` to a fresh tensor (never in place) and updates `m` in place. */
  readonly update: (variable: tf.Variable, g: tf.Tensor, m: M, c1: number, c2: number) => tf.TensorInfo
  readonly dispose: (all: ReadonlyArray<M>) => void
}

/**
 * Adam as one backend pass per variable: the step count, the bias corrections c1 = 1 / (1 - β1ᵗ) and
 * c2 = 1 / (1 - β2ᵗ), moments made on a variable's first step, and the variable assigned the new
 * value. The fresh output means clones of the old value (a "best" checkpoint) are never written to.
 */
export const makeAdamOptimizer = <M>(h: AdamHyper, kernel: AdamKernel<M>): StepOptimizer => {
  const moments = new Map<string, M>()
  let t = 0
  return {
    applyGradients: (grads) => {
      t++
      const c1 = 1 / (1 - Math.pow(h.beta1, t))
      const c2 = 1 / (1 - Math.pow(h.beta2, t))
      const engine = tf.engine()
      for (const [name, g] of Object.entries(grads)) {
        const variable = engine.registeredVariables[name]
        if (variable === undefined || g === undefined || variable.size === 0) continue
        let state = moments.get(name)
        if (state === undefined) {
          state = kernel.moments(variable.size)
          moments.set(name, state)
        }
        const next = engine.makeTensorFromTensorInfo(kernel.update(variable, g, state, c1, c2))
        variable.assign(next)
        next.dispose()
      }
    },
    dispose: () => {
      kernel.dispose([...moments.values()])
      moments.clear()
    }
  }
}

/** tfjs's own Adam, for the backends without a kernel of their own. */
export const tfjsAdam = (h: AdamHyper): StepOptimizer => {
  // Typed as the base class, whose applyGradients takes gradients (AdamOptimizer's says variables).
  const adam: tf.Optimizer = tf.train.adam(h.learningRate, h.beta1, h.beta2, h.epsilon)
  // AdamOptimizer reads its (protected) learningRate at every step: follow `h`, which a schedule may change.
  const rate = adam as unknown as { learningRate: number }
  return {
    applyGradients: (grads) => {
      rate.learningRate = h.learningRate
      adam.applyGradients(grads)
    },
    dispose: () => adam.dispose()
  }
}
