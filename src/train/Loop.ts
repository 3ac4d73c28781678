/**
 * The batch and epoch loops, written once: Trainer.ts runs them with tfjs steps or a backend's fused
 * step, Mutual.ts with its students' joint step. Here are yielding to the event loop, the reason an
 * abort rejects with, the seeded epoch order, the batch loop (abort, progress, yield), the epoch loop
 * (validation, early stopping, best checkpoint), and the best-epoch bookkeeping.
 */
import * as tf from "@tensorflow/tfjs"
import { deriveSeed, makeRng, permutation } from "../domain/Random.js"
import type { BatchReport, EpochReport, LoopOptions, TrainInfo } from "./Contract.js"
import type { Score } from "./Score.js"

/** Lets timers, I/O and signal handlers run between steps. */
export const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** The signal's reason, or an AbortError when it gave none. */
export const abortReason = (signal: AbortSignal): unknown => {
  if (signal.reason !== undefined) return signal.reason
  const e = new Error("Training was aborted")
  e.name = "AbortError"
  return e
}

export const throwIfAborted = (signal: AbortSignal | undefined): void => {
  if (signal?.aborted) throw abortReason(signal)
}

/** The epoch's row order: its own seeded stream, so resuming at epoch e would reproduce it. */
export const epochOrder = (seed: number, epoch: number, n: number): Int32Array =>
  permutation(n, makeRng(deriveSeed(seed, "shuffle", epoch)))

/** What the batch loop needs of a loop's options (TrainOptions and MutualOptions both fit). */
export interface EpochPlan {
  readonly batchSize: number
  readonly seed: number
  readonly signal?: AbortSignal
  readonly onBatch?: (r: BatchReport) => void
  /** Report every this many batches (default 10) and after the last. */
  readonly onBatchEvery?: number
}

/**
 * The batch loop: one epoch of batches over `n` rows. `step` gets the batch's first position in the
 * epoch's order, its rows and its index. Checks the signal before each batch and after the last,
 * reports progress, and awaits `pause` after each batch (by default a yield to the event loop).
 */
export const runBatches = async (
  o: EpochPlan,
  n: number,
  epoch: number,
  step: (start: number, rows: number, batch: number) => void,
  pause: (batch: number) => Promise<void> = nextTick
): Promise<void> => {
  const batches = Math.ceil(n / o.batchSize)
  const reportEvery = Math.max(1, Math.floor(o.onBatchEvery ?? 10))
  for (let b = 0; b < batches; b++) {
    throwIfAborted(o.signal)
    const start = b * o.batchSize
    step(start, Math.min(o.batchSize, n - start), b)
    if (o.onBatch !== undefined && ((b + 1) % reportEvery === 0 || b + 1 === batches)) o.onBatch({ epoch, batch: b + 1, batches })
    await pause(b)
  }
  throwIfAborted(o.signal)
}

/**
 * `runBatches` with tfjs steps and the running loss summed on the device: `step` gets the order
 * (int32, on the device), the batch's first position in it, its rows and index, and the sum so far,
 * and returns the new sum, which is read once, at the end. Every tensor made here is freed, on abort
 * or error too.
 */
export const runEpoch = async <S extends tf.Tensor>(
  o: EpochPlan,
  n: number,
  epoch: number,
  zero: S,
  step: (order: tf.Tensor1D, start: number, rows: number, batch: number, sum: S) => S
): Promise<Float32Array> => {
  const order = tf.tensor1d(epochOrder(o.seed, epoch, n), "int32")
  let sum = zero
  try {
    await runBatches(o, n, epoch, (start, rows, b) => {
      const next = step(order, start, rows, b, sum)
      sum.dispose()
      sum = next
    })
    return (await sum.data()) as Float32Array
  } finally {
    order.dispose()
    sum.dispose()
  }
}

/** The best epoch so far by one metric; `record` says whether the epoch is the new best. */
export interface BestTracker {
  readonly record: (epoch: number, value: number | undefined) => boolean
  /** 0 until an epoch has a finite value. */
  readonly epoch: () => number
  readonly value: () => number
}

export const makeBestTracker = (higherIsBetter: boolean): BestTracker => {
  let bestEpoch = 0
  let bestValue = Number.NaN
  return {
    record: (epoch, value) => {
      const best =
        value !== undefined && Number.isFinite(value) && (bestEpoch === 0 || (higherIsBetter ? value > bestValue : value < bestValue))
      if (best) {
        bestEpoch = epoch
        bestValue = value
      }
      return best
    },
    epoch: () => bestEpoch,
    value: () => bestValue
  }
}

/** The metric that picks the best epoch: the validation loss (or accuracy), or the train loss without validation. */
export type SelectionMetric = "val_loss" | "val_accuracy" | "train_loss"

export interface EpochBook {
  readonly metric: SelectionMetric
  readonly history: Array<EpochReport>
  /**
   * Records an epoch, calls `onEpoch`, and says whether it is the best so far (save its weights when
   * the checkpoint is "best") and whether early stopping ends training now.
   */
  record(epoch: {
    readonly epoch: number
    readonly trainLoss: number
    readonly validation?: Score
    /** performance.now() at the epoch's start. */
    readonly started: number
    /** Training time of the epoch, validation excluded. */
    readonly trainSeconds: number
  }): { readonly best: boolean; readonly stop: boolean }
  /** Whether the returned weights are a saved best epoch's rather than the last. */
  readonly useBest: () => boolean
  readonly info: (backend: string, started: number) => TrainInfo
}

/** The book of a loop over `n` training rows, `validated` when there are validation rows. */
export const makeEpochBook = (o: LoopOptions, n: number, validated: boolean): EpochBook => {
  const metric: SelectionMetric = validated ? (o.earlyStopping?.metric ?? "val_loss") : "train_loss"
  const tracker = makeBestTracker(metric === "val_accuracy")
  const history: Array<EpochReport> = []
  let sinceBest = 0
  let stoppedEarly = false
  let epochsRun = 0
  const useBest = () => o.checkpoint === "best" && tracker.epoch() > 0
  return {
    metric,
    history,
    record: ({ epoch, trainLoss, validation: v, started, trainSeconds }) => {
      epochsRun = epoch
      const report: EpochReport = {
        epoch,
        epochs: o.epochs,
        trainLoss,
        ...(v !== undefined ? { valLoss: v.loss, valAccuracy: v.accuracy } : {}),
        seconds: (performance.now() - started) / 1000,
        examplesPerSecond: n / trainSeconds
      }
      history.push(report)
      const best = tracker.record(epoch, metric === "train_loss" ? trainLoss : metric === "val_loss" ? v?.loss : v?.accuracy)
      sinceBest = best ? 0 : sinceBest + 1
      o.onEpoch?.(report)
      const stop = o.earlyStopping !== undefined && sinceBest >= o.earlyStopping.patience && epoch < o.epochs
      if (stop) stoppedEarly = true
      return { best, stop }
    },
    useBest,
    info: (backend, started) => ({
      checkpoint: o.checkpoint,
      epoch: useBest() ? tracker.epoch() : epochsRun,
      epochs: o.epochs,
      epochsRun,
      bestEpoch: tracker.epoch(),
      selectedOn: metric,
      bestValue: tracker.value(),
      stoppedEarly,
      backend,
      seconds: (performance.now() - started) / 1000
    })
  }
}

/** One way of training an epoch (tfjs steps, or a backend's fused step), as `runEpochs` drives it. */
export interface EpochRunner {
  /** Trains epoch `epoch` (1-based) and returns its loss sum (batch mean × rows, summed). */
  readonly train: (epoch: number) => Promise<number>
  /** Scores the current weights on the validation rows (only called when the book has them). */
  readonly validate: () => Promise<Score | undefined>
  /** Keeps the current weights as the best epoch's. */
  readonly saveBest: () => void
}

/** The epoch loop: train, validate, record, keep the best weights, stop early or after the last epoch. */
export const runEpochs = async (o: LoopOptions, n: number, book: EpochBook, runner: EpochRunner): Promise<void> => {
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const started = performance.now()
    const trainLoss = (await runner.train(epoch)) / n
    const trainSeconds = (performance.now() - started) / 1000
    const v = book.metric === "train_loss" ? undefined : await runner.validate()
    throwIfAborted(o.signal)
    const { best, stop } = book.record({ epoch, trainLoss, ...(v !== undefined ? { validation: v } : {}), started, trainSeconds })
    if (best && o.checkpoint === "best") runner.saveBest()
    if (stop) break
  }
}

/** Copies of a model's variables from its best epoch, kept across tidies; `dispose` frees them. */
export interface BestWeights {
  readonly save: () => void
  /** The saved copies, or undefined before the first `save`. */
  readonly saved: () => ReadonlyArray<tf.Tensor> | undefined
  readonly dispose: () => void
}

export const makeBestWeights = (variables: ReadonlyArray<tf.Variable>): BestWeights => {
  let best: Array<tf.Tensor> | undefined
  return {
    save: () => {
      tf.dispose(best)
      best = variables.map((x) => tf.keep(tf.clone(x)))
    },
    saved: () => best,
    dispose: () => tf.dispose(best)
  }
}
