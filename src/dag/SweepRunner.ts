/**
 * Runs a sweep's trials: each trial is one executor run (its own run id, tagged with the sweep id and
 * trial number), at most `concurrency` at a time. Trials share every node whose cache key is equal
 * (the teacher of one seed, its generation): the executor's in-flight map makes concurrent trials
 * wait for the one computing it, and the cache serves later ones. A failed trial never stops the
 * others; the result names each failure. Interrupting a sweep marks it interrupted; running it again
 * resumes, as every finished node is a cache hit and failed ones are retried.
 *
 * The sweep and its trials (params, seeds, run ids) are recorded before any trial runs, and the
 * `trials` / `summary` views are regenerated when it starts and ends (store/Views.ts).
 * `SweepReporter` shows progress: on a terminal a redrawn status line (done, running, cached, failed,
 * ETA), in a log one line per finished trial.
 */
import { Clock, Context, Effect, Either, Layer, Random } from "effect"
import type { Progress } from "../nodes/NodeKind.js"
import type { Sweep, SweepTrial } from "../pipeline/SweepGrammar.js"
import { describePoint } from "../pipeline/SweepGrammar.js"
import * as ReadModel from "../store/ReadModel.js"
import { ResultsStore } from "../store/ResultsStore.js"
import type { RunResult } from "./Executor.js"
import { Executor } from "./Executor.js"
import type { ReporterShape } from "./Reporter.js"
import { formatDuration } from "./Reporter.js"

export interface SweepOptions {
  /** Trials run at the same time (default 2). */
  readonly concurrency?: number
  /** Nodes computed at the same time within one trial (default 2). */
  readonly nodeConcurrency?: number
  readonly sweepId?: string
}

export interface TrialOutcome {
  readonly trial: number
  readonly point: number
  readonly seed: number
  readonly runId: string
  readonly params: ReadonlyArray<readonly [string, unknown]>
  /** `cached` when every node was a cache hit. */
  readonly status: "succeeded" | "cached" | "failed"
  readonly executed: number
  readonly cached: number
  readonly failures: ReadonlyArray<{ readonly node: string; readonly message: string }>
  readonly durationMs: number
  readonly run?: RunResult
}

export interface SweepResult {
  readonly sweepId: string
  readonly pipeline: string
  readonly status: "succeeded" | "failed"
  readonly trials: ReadonlyArray<TrialOutcome>
  readonly durationMs: number
}

// ---------------------------------------------------------------------------------------------------
// Progress

export interface SweepReporterShape {
  readonly started: (sweepId: string, trials: number, concurrency: number) => void
  readonly trialStarted: (trial: SweepTrial) => void
  readonly trialFinished: (outcome: TrialOutcome) => void
  readonly finished: (result: SweepResult) => void
  /** The executor's node-level reporter while a sweep runs (feeds the status line). */
  readonly node: ReporterShape
}

/** Shows a sweep's progress; `layerSilent` for tests, `layerConsole` for the CLI (stderr). */
export class SweepReporter extends Context.Tag("distillery/SweepReporter")<SweepReporter, SweepReporterShape>() {
  static readonly layerSilent = Layer.succeed(SweepReporter, {
    started: () => {},
    trialStarted: () => {},
    trialFinished: () => {},
    finished: () => {},
    node: { started: () => {}, progress: () => {}, finished: () => {}, log: () => {} }
  })

  static readonly layerConsole = Layer.sync(SweepReporter, () => makeSweepConsole(process.stderr))
}

export const trialLabel = (t: { readonly trial: number; readonly params: ReadonlyArray<readonly [string, unknown]>; readonly seed: number }): string =>
  `trial ${t.trial}${t.params.length > 0 ? ` (${describePoint(t.params)} seed=${t.seed})` : ` (seed=${t.seed})`}`

/** The text of one finished trial, as printed in a log and in the summary. */
export const trialLine = (o: TrialOutcome, total: number): string => {
  const icon = o.status === "failed" ? "✗" : o.status === "cached" ? "↺" : "✓"
  const nodes = `${o.executed} executed, ${o.cached} cached`
  const why = o.failures.map((f) => `node '${f.node}': ${f.message.split("\n")[0]}`).join("; ")
  return `${icon} ${trialLabel(o).replace(/^trial (\d+)/, `trial $1/${total}`)} ${o.status} in ${formatDuration(o.durationMs)}: ${nodes}${why ? `; ${why}` : ""}`
}

export const makeSweepConsole = (out: NodeJS.WriteStream): SweepReporterShape => {
  const tty = out.isTTY === true
  let total = 0
  let running = 0
  let done = 0
  let cached = 0
  let failed = 0
  let startedAt = performance.now()
  let latest = ""
  let live = false
  const status = () => {
    const elapsed = performance.now() - startedAt
    const eta = done > 0 && done < total ? `  ETA ${formatDuration((elapsed / done) * (total - done))}` : ""
    return `sweep ${done}/${total} done: ${cached} cached, ${failed} failed; ${running} running${eta}${latest ? ` | ${latest}` : ""}`
  }
  let drawnAt = 0
  /** Redraws the status line; node progress (many events a second) at most every 100 ms. */
  const redraw = (force = true) => {
    if (!tty) return
    const now = performance.now()
    if (!force && now - drawnAt < 100) return
    drawnAt = now
    out.write(`\r\x1b[K${status().slice(0, (out.columns ?? 120) - 1)}`)
    live = true
  }
  const line = (text: string) => {
    if (live) out.write("\r\x1b[K")
    live = false
    out.write(`${text}\n`)
  }
  const formatProgress = (node: string, p: Progress) =>
    `${node} ${p.unit} ${Math.floor(p.done)}/${p.total}`
  return {
    started: (sweepId, trials, concurrency) => {
      total = trials
      startedAt = performance.now()
      line(`sweep ${sweepId}: ${trials} trials, ${concurrency} at a time`)
      redraw()
    },
    trialStarted: () => {
      running++
      redraw()
    },
    trialFinished: (o) => {
      running--
      done++
      if (o.status === "failed") failed++
      if (o.status === "cached") cached++
      // In a log every finished trial gets its line; on a terminal only failures stay on screen.
      if (!tty || o.status === "failed") line(trialLine(o, total))
      redraw()
    },
    finished: () => {
      if (live) out.write("\r\x1b[K")
      live = false
    },
    node: {
      started: () => {},
      progress: (node, p) => {
        latest = formatProgress(node, p)
        redraw(false)
      },
      finished: () => {},
      log: (text) => line(text)
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Running

const stamp = Effect.gen(function* () {
  const now = new Date(yield* Clock.currentTimeMillis)
  const time = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)
  const suffix = (yield* Random.nextIntBetween(0, 0xffff)).toString(16).padStart(4, "0")
  return `${time}-${suffix}`
})

/** `sweep-20260101-120000-ab12`; trial run ids append `-t<trial>`. */
export const makeSweepId = Effect.map(stamp, (s) => `sweep-${s}`)

const pad = (n: number, total: number) => String(n).padStart(String(Math.max(0, total - 1)).length, "0")

export const runSweep = (
  sweep: Sweep,
  options: SweepOptions = {}
): Effect.Effect<SweepResult, never, Executor | ResultsStore | SweepReporter> =>
  Effect.gen(function* () {
    const executor = yield* Executor
    const results = yield* ResultsStore
    const reporter = yield* SweepReporter
    const sweepId = options.sweepId ?? (yield* makeSweepId)
    const concurrency = Math.max(1, options.concurrency ?? 2)
    const total = sweep.trials.length
    const runIdOf = (t: SweepTrial) => `${sweepId.replace(/^sweep-/, "")}-t${pad(t.index, total)}`
    const began = yield* Clock.currentTimeMillis

    yield* results
      .startSweep({
        sweepId,
        pipeline: sweep.pipeline.name,
        pipelinePath: sweep.pipeline.source,
        params: sweep.paths,
        baseline: sweep.baselineNode,
        trials: sweep.trials.map((t) => ({ trial: t.index, point: t.point, runId: runIdOf(t), seed: t.seed, params: t.params }))
      })
      .pipe(Effect.orDie)
    yield* results.refreshViews().pipe(Effect.orDie)
    reporter.started(sweepId, total, concurrency)

    const runTrial = (t: SweepTrial) =>
      Effect.gen(function* () {
        reporter.trialStarted(t)
        const start = yield* Clock.currentTimeMillis
        const runId = runIdOf(t)
        const result = yield* Effect.either(
          executor.run(t.pipeline, { runId, sweepId, trial: t.index, concurrency: options.nodeConcurrency ?? 2 })
        )
        const durationMs = (yield* Clock.currentTimeMillis) - start
        const base = { trial: t.index, point: t.point, seed: t.seed, runId, params: t.params, durationMs }
        // A failed run reports only its failures; how many nodes ran or were cached is in the store.
        const counted = Either.isRight(result)
          ? new Map<string, number>()
          : new Map(
              Object.entries(
                yield* ReadModel.nodeStatusCounts(runId).pipe(Effect.provideService(ResultsStore, results), Effect.orElseSucceed(() => ({})))
              )
            )
        const outcome: TrialOutcome = Either.isRight(result)
          ? {
              ...base,
              status: result.right.nodes.every((n) => n.status === "cached") ? "cached" : "succeeded",
              executed: result.right.nodes.filter((n) => n.status === "executed").length,
              cached: result.right.nodes.filter((n) => n.status === "cached").length,
              failures: [],
              run: result.right
            }
          : {
              ...base,
              status: "failed",
              executed: counted.get("executed") ?? 0,
              cached: counted.get("cached") ?? 0,
              // A backend that cannot start fails the trial before any node runs.
              failures: result.left._tag === "BackendError" ? [{ node: "(backend)", message: result.left.message }] : result.left.failures
            }
        reporter.trialFinished(outcome)
        return outcome
      })

    const finish = (status: "succeeded" | "failed" | "interrupted") =>
      results.finishSweep(sweepId, status).pipe(Effect.zipRight(results.refreshViews()), Effect.orDie)

    const outcomes = yield* Effect.forEach(sweep.trials, runTrial, { concurrency }).pipe(
      Effect.onInterrupt(() => finish("interrupted"))
    )
    const failed = outcomes.filter((o) => o.status === "failed")
    // Each failed trial's run holds its error (runs.error).
    yield* finish(failed.length > 0 ? "failed" : "succeeded")
    const result: SweepResult = {
      sweepId,
      pipeline: sweep.pipeline.name,
      status: failed.length > 0 ? "failed" : "succeeded",
      trials: outcomes,
      durationMs: (yield* Clock.currentTimeMillis) - began
    }
    reporter.finished(result)
    return result
  })

/** "sweep X: 45 trials, 40 succeeded (12 all cached), 5 failed" and one line per failure with its cause. */
export const sweepSummary = (result: SweepResult): string => {
  const count = (s: TrialOutcome["status"]) => result.trials.filter((t) => t.status === s).length
  const failed = result.trials.filter((t) => t.status === "failed")
  const head = `sweep ${result.sweepId}: ${result.trials.length} trials, ${count("succeeded") + count("cached")} succeeded (${count("cached")} all cached), ${failed.length} failed, in ${formatDuration(result.durationMs)}`
  return failed.length === 0 ? head : `${head}\n${failed.map((o) => `  ${trialLine(o, result.trials.length)}`).join("\n")}`
}
