/**
 * Training through a backend's fused MLP step (backend/webgpu/FusedMlp.ts: the whole step in its own
 * kernels, tfjs bypassed) when the backend has one and it covers the run: a ReLU MLP without input
 * dropout, Adam without weight decay, no extra terms, and the objective of src/losses/Objective.ts with
 * divergence "none" or "forward_kl" against dense teacher logits. The contract is Trainer.ts `train`'s,
 * and so are the loops (Loop.ts), the validation score (Score.ts) and the weights' names; only the
 * step and the loss sum run on the backend. `trainFusedMlp` returns undefined for anything it does not
 * cover, and the caller runs the generic loop.
 */
import * as tf from "@tensorflow/tfjs"
import type { AdamHyper } from "../backend/Adam.js"
import type { BackendCapabilities } from "../backend/Capabilities.js"
import { backendCapabilities } from "../backend/Capabilities.js"
import type { LossWeights } from "../backend/webgpu/FusedMlp.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed } from "../domain/Random.js"
import type { ObjectiveSpec } from "../losses/Objective.js"
import { temperatureFactor } from "../losses/Objective.js"
import type { MlpSpec } from "../models/ModelSpec.js"
import { networkWeights } from "../models/Network.js"
import { classifier } from "./Classifier.js"
import type { TrainOptions, TrainResult } from "./Contract.js"
import { epochOrder, makeEpochBook, nextTick, runBatches, runEpochs, throwIfAborted } from "./Loop.js"
import { scoreLogits } from "./Score.js"

/** Steps between yields to the event loop; also bounds how far recording runs ahead of the GPU. */
const yieldEvery = 4

/** The loss weights the fused kernels implement for `o`, or undefined when they cannot. */
const lossWeights = (objective: ObjectiveSpec, o: TrainOptions): LossWeights | undefined => {
  if (objective.divergence !== "none" && objective.divergence !== "forward_kl") return undefined
  if (o.teacher !== undefined && !("logits" in o.teacher)) return undefined
  // As objectiveLoss: without a teacher batch, or with divergence "none", the CE alone at weight 1.
  if (o.teacher === undefined || objective.divergence === "none") return { kl: 0, ce: 1, temperature: 1 }
  return { kl: objective.alpha * temperatureFactor(objective), ce: 1 - objective.alpha, temperature: objective.temperature }
}

/** Everything `trainFusedMlp` needs once it has decided to take `o`. */
interface Accepted {
  readonly spec: MlpSpec
  readonly loss: LossWeights
  readonly adam: AdamHyper
}

const accept = (o: TrainOptions): Accepted | undefined => {
  if (o.objective === undefined || o.extra !== undefined) return undefined
  const spec = o.spec
  if (spec.type !== "mlp" || spec.activation !== "relu" || spec.inputDropout > 0) return undefined
  const opt = o.optimizer
  if (opt.type !== "adam" || (opt.weightDecay ?? 0) !== 0) return undefined
  const loss = lossWeights(o.objective, o)
  if (loss === undefined) return undefined
  return {
    spec,
    loss,
    adam: { learningRate: opt.learningRate, beta1: opt.beta1 ?? 0.9, beta2: opt.beta2 ?? 0.999, epsilon: opt.epsilon ?? 1e-7 }
  }
}

/**
 * Trains `o` with the backend's fused step when it has one that covers `o` (see the module doc), else
 * returns undefined. Expects `o` already validated (Trainer.ts `train` calls it after its checks).
 */
export const trainFusedMlp = async (o: TrainOptions, backend: BackendCapabilities = backendCapabilities()): Promise<TrainResult | undefined> => {
  const kernels = backend.fusedMlp
  const accepted = kernels === undefined ? undefined : accept(o)
  if (kernels === undefined || accepted === undefined) return undefined
  const n = o.train.y.length
  const sizes = [featureSize(o.featureShape), ...accepted.spec.hidden, o.numClasses]
  const bs = Math.min(o.batchSize, n)
  if (!kernels.fits({ sizes, batchSize: bs, trainRows: n, validationRows: o.validation?.y.length ?? 0 })) return undefined
  throwIfAborted(o.signal)

  const started = performance.now()
  const validated = o.validation !== undefined && o.validation.y.length > 0
  const book = makeEpochBook(o, n, validated)
  // The initial weights the generic loop would start from (same seeded init), in network order.
  const net = classifier(o.featureShape, o.numClasses).build(o.spec, o.seed, o.initial?.weights)
  const initial = await networkWeights(net).finally(() => net.dispose())
  const fused = await kernels.build({
    sizes,
    batchSize: bs,
    dropout: accepted.spec.dropout,
    loss: accepted.loss,
    adam: accepted.adam,
    train: { x: o.train.x, y: o.train.y, ...(accepted.loss.kl > 0 ? { teacher: (o.teacher as { logits: Float32Array }).logits } : {}) },
    ...(validated ? { validationX: o.validation!.x } : {}),
    initial: initial.map((w) => w.values)
  })
  const valLabels = validated ? tf.tensor1d(o.validation!.y, "int32") : undefined
  try {
    let t = 0
    let inFlight: Promise<void> | undefined
    /** Every few steps: waits for the GPU only as far as the previous pause, so recording stays a few steps ahead. */
    const pause = async (b: number) => {
      if ((b + 1) % yieldEvery !== 0) return
      await inFlight
      inFlight = fused.idle()
      await nextTick()
    }
    await runEpochs(o, n, book, {
      train: async (epoch) => {
        fused.beginEpoch(epochOrder(o.seed, epoch, n))
        await runBatches(o, n, epoch, (start, rows, b) => fused.step(start, rows, deriveSeed(o.seed, "dropout", epoch, b), ++t), pause)
        return fused.readLossSum()
      },
      validate: async () => scoreLogits(await fused.validationLogits(), valLabels!, o.signal),
      saveBest: fused.saveBest
    })
    const values = await fused.readWeights(book.useBest())
    return {
      weights: initial.map((w, i) => ({ name: w.name, shape: [...w.shape], values: values[i]! })),
      info: book.info(backend.name, started),
      history: book.history
    }
  } finally {
    valLabels?.dispose()
    // Buffers still used by submitted work are destroyed only once it is done.
    await fused.idle()
    fused.destroy()
  }
}
