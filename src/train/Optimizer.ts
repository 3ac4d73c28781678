/**
 * The optimizer side of a training step, shared by every loop: the optimizer the options ask for (the
 * backend's own Adam where it has one, see backend/Capabilities.ts), weight decay, and freeing it all.
 */
import * as tf from "@tensorflow/tfjs"
import type { AdamHyper, StepOptimizer } from "../backend/Adam.js"
import type { BackendCapabilities } from "../backend/Capabilities.js"
import { backendCapabilities } from "../backend/Capabilities.js"
import type { OptimizerOptions } from "./Contract.js"

export type { StepOptimizer } from "../backend/Adam.js"

export const makeOptimizer = (o: OptimizerOptions, backend: BackendCapabilities = backendCapabilities()): StepOptimizer => {
  if (o.type === "adam") {
    return backend.makeAdam({ learningRate: o.learningRate, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, epsilon: o.epsilon ?? 1e-7 })
  }
  const momentum = o.momentum ?? 0
  const sgd: tf.Optimizer = momentum > 0 ? tf.train.momentum(o.learningRate, momentum, o.nesterov ?? false) : tf.train.sgd(o.learningRate)
  return sgd
}

export const disposeOptimizer = (opt: StepOptimizer): void => {
  opt.dispose()
  // MomentumOptimizer.dispose (tfjs 4.22) forgets the learning-rate scalar its SGD base keeps.
  const c = (opt as unknown as { c?: tf.Tensor }).c
  if (c !== undefined && !c.isDisposed) c.dispose()
}

/** An optimizer with the options' weight decay: what a loop steps. */
export interface Updater {
  /**
   * One step on `loss`: its gradients w.r.t. `trainable`, weight decay on `decayed` (a network's
   * variables, not an extra term's), then the optimizer. Returns the loss; call inside a tidy.
   */
  readonly minimize: (loss: () => tf.Scalar, trainable: ReadonlyArray<tf.Variable>, decayed: ReadonlyArray<tf.Variable>) => tf.Scalar
  /** The loss and its gradients w.r.t. `trainable`, without a step (for accumulating over micro-batches). */
  readonly gradients: (loss: () => tf.Scalar, trainable: ReadonlyArray<tf.Variable>) => { readonly value: tf.Scalar; readonly grads: tf.NamedTensorMap }
  /**
   * A step with given gradients: clipped to the global norm `clipNorm` when set, weight decay on
   * `decayed`, then the optimizer. Returns the global norm before clipping when clipping; call inside a tidy.
   */
  readonly apply: (grads: tf.NamedTensorMap, decayed: ReadonlyArray<tf.Variable>) => tf.Scalar | undefined
  /** Sets the step size of the following steps (a learning-rate schedule's hook); decoupled decay follows it. Call between steps. */
  readonly setLearningRate: (learningRate: number) => void
  readonly dispose: () => void
}

/** sqrt of the sum of squares of every gradient: the norm of all of them as one vector. */
export const globalNorm = (grads: tf.NamedTensorMap): tf.Scalar =>
  tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g))))) as tf.Scalar

/**
 * Gradients scaled by min(1, maxNorm / norm) (Pascanu et al. 2013; PyTorch's clip_grad_norm_), so
 * their global norm is at most `maxNorm` and their direction is kept.
 */
export const clipByGlobalNorm = (grads: tf.NamedTensorMap, maxNorm: number, norm: tf.Scalar = globalNorm(grads)): tf.NamedTensorMap => {
  const scale = tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6)))
  return Object.fromEntries(Object.entries(grads).map(([name, g]) => [name, tf.mul(g, scale)]))
}

export interface UpdaterOptions {
  /** Clip the gradients to this global norm before each step (absent: no clipping). */
  readonly clipNorm?: number
}

export const makeUpdater = (o: OptimizerOptions, backend: BackendCapabilities, u: UpdaterOptions = {}): Updater => {
  const wd = o.weightDecay ?? 0
  let learningRate = o.learningRate
  // The backend's Adam reads `hyper.learningRate` every step; SGD has its own setter.
  const hyper: AdamHyper | undefined =
    o.type === "adam" ? { learningRate, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, epsilon: o.epsilon ?? 1e-7 } : undefined
  const optimizer = hyper !== undefined ? backend.makeAdam(hyper) : makeOptimizer(o, backend)
  // SGD: L2 added to the gradient, g <- g + wd * w. Adam: decoupled, w <- (1 - lr * wd) w before the step.
  const sgdDecay = o.type === "sgd" && wd > 0 ? tf.scalar(wd) : undefined
  let adamDecay = o.type === "adam" && wd > 0 ? tf.scalar(1 - learningRate * wd) : undefined
  const apply = (grads: tf.NamedTensorMap, decayed: ReadonlyArray<tf.Variable>): tf.Scalar | undefined => {
    const norm = u.clipNorm !== undefined ? globalNorm(grads) : undefined
    let g = u.clipNorm !== undefined ? clipByGlobalNorm(grads, u.clipNorm, norm) : grads
    if (sgdDecay !== undefined) {
      g = { ...g }
      for (const v of decayed) {
        const gv = g[v.name]
        if (gv !== undefined) g[v.name] = tf.add(gv, tf.mul(v, sgdDecay))
      }
    }
    if (adamDecay !== undefined) for (const v of decayed) v.assign(tf.mul(v, adamDecay))
    optimizer.applyGradients(g)
    return norm
  }
  const gradients = (loss: () => tf.Scalar, trainable: ReadonlyArray<tf.Variable>) => tf.variableGrads(loss, trainable as Array<tf.Variable>)
  return {
    minimize: (loss, trainable, decayed) => {
      const { value, grads } = gradients(loss, trainable)
      apply(grads, decayed)
      return value
    },
    gradients,
    apply,
    setLearningRate: (lr) => {
      if (lr === learningRate) return
      learningRate = lr
      if (hyper !== undefined) hyper.learningRate = lr
      if (o.type === "sgd") (optimizer as unknown as { setLearningRate: (lr: number) => void }).setLearningRate(lr)
      if (adamDecay !== undefined) {
        adamDecay.dispose()
        adamDecay = tf.keep(tf.scalar(1 - lr * wd))
      }
    },
    dispose: () => {
      disposeOptimizer(optimizer)
      tf.dispose([sgdDecay, adamDecay].filter((t) => t !== undefined))
    }
  }
}
