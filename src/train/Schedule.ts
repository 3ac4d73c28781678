/**
 * Learning-rate schedules: the step size of optimizer step t (0-based) as a pure function, which a loop
 * hands to `Updater.setLearningRate` before each step. Linear warm-up then cosine decay is the
 * schedule of GPT-2/nanoGPT and LLaMA.
 */

export interface WarmupCosine {
  /** The step size reached at the end of warm-up. */
  readonly peak: number
  /** Steps of linear warm-up from peak / warmupSteps up to peak (0: start at peak). */
  readonly warmupSteps: number
  /** Steps in all; decay reaches `minRatio` x peak at the last one. */
  readonly totalSteps: number
  /** The floor, as a fraction of peak (nanoGPT's min_lr = lr / 10). */
  readonly minRatio: number
}

/**
 * lr(t) = peak (t + 1) / warmupSteps for t < warmupSteps, then
 * min + (peak - min) (1 + cos(pi p)) / 2 with p = (t - warmupSteps) / (totalSteps - 1 - warmupSteps),
 * so the first step after warm-up uses peak and the last uses min = minRatio x peak.
 */
export const warmupCosine = (s: WarmupCosine) => (t: number): number => {
  if (t < s.warmupSteps) return (s.peak * (t + 1)) / s.warmupSteps
  const decaySteps = s.totalSteps - 1 - s.warmupSteps
  const min = s.minRatio * s.peak
  if (decaySteps <= 0) return s.peak
  const p = Math.min(1, (t - s.warmupSteps) / decaySteps)
  return min + ((s.peak - min) * (1 + Math.cos(Math.PI * p))) / 2
}
