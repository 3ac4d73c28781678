/**
 * The optimizer side of a training step, shared by every loop: the optimizer the options ask for (the
 * backend's own Adam where it has one, see backend/Capabilities.ts), weight decay, and freeing it all.
 */
import * as tf from "@tensorflow/tfjs"
import type { StepOptimizer } from "../backend/Adam.js"
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
  readonly dispose: () => void
}

export const makeUpdater = (o: OptimizerOptions, backend: BackendCapabilities): Updater => {
  const optimizer = makeOptimizer(o, backend)
  const wd = o.weightDecay ?? 0
  // SGD: L2 added to the gradient, g <- g + wd * w. Adam: decoupled, w <- (1 - lr * wd) w before the step.
  const sgdDecay = o.type === "sgd" && wd > 0 ? tf.scalar(wd) : undefined
  const adamDecay = o.type === "adam" && wd > 0 ? tf.scalar(1 - o.learningRate * wd) : undefined
  return {
    minimize: (loss, trainable, decayed) => {
      const { value, grads } = tf.variableGrads(loss, trainable as Array<tf.Variable>)
      if (sgdDecay !== undefined) {
        for (const v of decayed) {
          const g = grads[v.name]
          if (g !== undefined) grads[v.name] = tf.add(g, tf.mul(v, sgdDecay))
        }
      }
      if (adamDecay !== undefined) for (const v of decayed) v.assign(tf.mul(v, adamDecay))
      optimizer.applyGradients(grads)
      return value
    },
    dispose: () => {
      disposeOptimizer(optimizer)
      tf.dispose([sgdDecay, adamDecay].filter((t) => t !== undefined))
    }
  }
}
