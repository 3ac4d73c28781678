/**
 * What every training loop shares (Trainer.ts's generic loop, WebGpuMlp.ts's fused one, Mutual.ts):
 * yielding to the event loop, the reason an abort rejects with, and the epoch book, which records
 * each epoch's report, picks the checkpoint epoch and decides early stopping.
 */
import * as tf from "@tensorflow/tfjs"
import { deriveSeed, makeRng, permutation } from "../domain/Random.js"
import type { BatchReport, EpochReport, TrainInfo, TrainOptions } from "./Trainer.js"

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

/** What `runEpoch` needs of a loop's options (TrainOptions and MutualOptions both fit). */
export interface EpochPlan {
  readonly batchSize: number
  readonly seed: number
  readonly signal?: AbortSignal
  readonly onBatch?: (r: BatchReport) => void
  /** Report every this many batches (default 10) and after the last. */
  readonly onBatchEvery?: number
}

/**
 * One epoch of batches over `n` rows in the epoch's order, the running loss summed on the device:
 * `step` gets the order (int32, on the device), the batch's first position in it, its rows and index,
 * and the sum so far, and returns the new sum. Checks the signal before each batch, reports progress,
 * yields to the event loop between batches, and reads the sum once, at the end. Every tensor made
 * here is freed, on abort or error too.
 */
export const runEpoch = async <S extends tf.Tensor>(
  o: EpochPlan,
  n: number,
  epoch: number,
  zero: S,
  step: (order: tf.Tensor1D, start: number, rows: number, batch: number, sum: S) => S
): Promise<Float32Array> => {
  const batches = Math.ceil(n / o.batchSize)
  const reportEvery = Math.max(1, Math.floor(o.onBatchEvery ?? 10))
  const order = tf.tensor1d(epochOrder(o.seed, epoch, n), "int32")
  let sum = zero
  try {
    for (let b = 0; b < batches; b++) {
      throwIfAborted(o.signal)
      const start = b * o.batchSize
      const next = step(order, start, Math.min(o.batchSize, n - start), b, sum)
      sum.dispose()
      sum = next
      if (o.onBatch !== undefined && ((b + 1) % reportEvery === 0 || b + 1 === batches)) o.onBatch({ epoch, batch: b + 1, batches })
      await nextTick()
    }
    throwIfAborted(o.signal)
    return (await sum.data()) as Float32Array
  } finally {
    order.dispose()
    sum.dispose()
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
    readonly validation?: { readonly loss: number; readonly accuracy: number }
    /** performance.now() at the epoch's start. */
    readonly started: number
    /** Training time of the epoch, validation excluded. */
    readonly trainSeconds: number
  }): { readonly best: boolean; readonly stop: boolean }
  /** Whether the returned weights are a saved best epoch's rather than the last. */
  readonly useBest: () => boolean
  readonly info: (backend: string, started: number) => TrainInfo
}

export const makeEpochBook = (o: TrainOptions): EpochBook => {
  const n = o.train.y.length
  const metric: SelectionMetric =
    o.validation === undefined || o.validation.y.length === 0 ? "train_loss" : (o.earlyStopping?.metric ?? "val_loss")
  const better = (a: number, b: number) => (metric === "val_accuracy" ? a > b : a < b)
  const history: Array<EpochReport> = []
  let bestEpoch = 0
  let bestValue = Number.NaN
  let sinceBest = 0
  let stoppedEarly = false
  let epochsRun = 0
  const useBest = () => o.checkpoint === "best" && bestEpoch > 0
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
      const value = metric === "train_loss" ? trainLoss : metric === "val_loss" ? v?.loss : v?.accuracy
      const best = value !== undefined && Number.isFinite(value) && (bestEpoch === 0 || better(value, bestValue))
      if (best) {
        bestEpoch = epoch
        bestValue = value
        sinceBest = 0
      } else {
        sinceBest++
      }
      o.onEpoch?.(report)
      const stop = o.earlyStopping !== undefined && sinceBest >= o.earlyStopping.patience && epoch < o.epochs
      if (stop) stoppedEarly = true
      return { best, stop }
    },
    useBest,
    info: (backend, started) => ({
      checkpoint: o.checkpoint,
      epoch: useBest() ? bestEpoch : epochsRun,
      epochs: o.epochs,
      epochsRun,
      bestEpoch,
      selectedOn: metric,
      bestValue,
      stoppedEarly,
      backend,
      seconds: (performance.now() - started) / 1000
    })
  }
}
