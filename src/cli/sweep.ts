/**
 * `distillery sweep <pipeline>`: expands the pipeline's `sweep:` section into trials and runs them,
 * `--concurrency` at a time, heavy nodes on `--workers` worker threads; prints the results per param
 * combination (mean ± 95% CI over the seeds) and names every failed trial and why.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import type { SweepResult } from "../dag/SweepRunner.js"
import { formatNumber, formatTable } from "../store/Format.js"
import type { QueryResult } from "../store/ResultsStore.js"
import { RunIdText } from "../domain/Ids.js"
import * as ReadModel from "../store/ReadModel.js"
import { backendOption, defaultWorkers, loadSweep, refuseTakenId, storeOption } from "./shared.js"

/** Some trials failed; the others finished and are cached. */
export class SweepFailedError extends Schema.TaggedError<SweepFailedError>()("SweepFailedError", {
  sweepId: Schema.String,
  message: Schema.String
}) {}

/**
 * The sweep's results per param combination: the swept params, then for each node with the metric
 * (accuracy when recorded, else the first metric), `mean ± ci95` over the seeds, with the paired
 * difference against the baseline when there is one.
 */
export interface SweepTable {
  readonly table: QueryResult
  readonly metric: string
  readonly baseline: string | undefined
  /** What the cells are: the metric, the number of seeds, the baseline. */
  readonly title: string
}

export const sweepTable = (sweepId: string, paths: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const all = yield* ReadModel.summary(sweepId)
    const names = [...new Set(all.map((r) => r.metric))].sort()
    if (names.length === 0) return Option.none<SweepTable>()
    const metric = names.includes("accuracy") ? "accuracy" : names[0]!
    const rows = all.filter((r) => r.metric === metric)
    const nodes = [...new Set(rows.map((r) => r.nodeId))]
    const points = new Map<number, Array<unknown>>()
    const cells = new Map<string, string>()
    const ci = (mean: unknown, half: unknown) =>
      typeof mean !== "number" ? "-" : `${formatNumber(mean)}${typeof half === "number" ? ` ± ${formatNumber(half)}` : ""}`
    let baseline: string | undefined
    const counts = new Set<number>()
    for (const r of rows) {
      if (!points.has(r.point)) points.set(r.point, paths.map((p) => r.params[p] ?? null))
      if (r.baseline !== null) baseline = r.baseline
      counts.add(r.n)
      const diff = r.diffMean
      cells.set(`${r.point}\u0000${r.nodeId}`, `${ci(r.mean, r.ci95)}${diff !== null ? ` (${diff >= 0 ? "+" : ""}${ci(diff, r.diffCi95)})` : ""}`)
    }
    const short = (p: string) => p.split(".").slice(-1)[0]!
    const result: QueryResult = {
      columns: [...paths.map(short), ...nodes.map((n) => `${n}.${metric}`)],
      types: [],
      rows: [...points].map(([point, params]) => [...params, ...nodes.map((n) => cells.get(`${point}\u0000${n}`) ?? "-")])
    }
    const seeds = counts.size === 1 ? `${[...counts][0]} seeds` : `${Math.min(...counts)} to ${Math.max(...counts)} seeds`
    const title = `${metric}: mean ± 95% CI over ${seeds}` +
      (baseline !== undefined ? `; in parentheses, minus ${baseline}'s ${metric} in the same trial (paired by seed)` : "")
    return Option.some<SweepTable>({ table: result, metric, baseline, title })
  })


export const sweep = Command.make(
  "sweep",
  {
    pipeline: Args.text({ name: "pipeline" }).pipe(Args.withDescription("a pipeline YAML file with a `sweep:` section")),
    store: storeOption,
    backend: backendOption,
    concurrency: Options.integer("concurrency").pipe(
      Options.withDescription("how many trials run at once (default: the number of workers, at least 2)"),
      Options.optional
    ),
    workers: Options.integer("workers").pipe(
      Options.withDescription("worker threads for training and generation (0: all on the main thread)"),
      Options.withDefault(defaultWorkers)
    ),
    sweepId: Options.text("sweep-id").pipe(Options.withSchema(RunIdText), Options.withDescription("the id to give this sweep"), Options.optional)
  },
  (o) =>
    Effect.gen(function* () {
      const loaded = yield* loadSweep(o.pipeline)
      if (Option.isSome(o.sweepId)) yield* refuseTakenId("sweep", o.sweepId.value)
      const { runSweep, sweepSummary } = yield* Effect.promise(() => import("../dag/SweepRunner.js"))
      const concurrency = Option.getOrElse(o.concurrency, () => Math.max(2, o.workers))
      const result: SweepResult = yield* runSweep(loaded, {
        concurrency,
        ...(Option.isSome(o.sweepId) ? { sweepId: o.sweepId.value } : {})
      })
      const table = yield* sweepTable(result.sweepId, loaded.paths)
      if (Option.isSome(table)) yield* Console.log(`${table.value.title}\n${formatTable(table.value.table, { maxCellWidth: 60 })}`)
      const summary = sweepSummary(result)
      yield* Console.log(summary.split("\n")[0]!)
      yield* Console.log(`results: distillery show ${result.sweepId}   (SQL: trials, summary, trial_results)`)
      if (result.status === "failed") {
        return yield* new SweepFailedError({
          sweepId: result.sweepId,
          message: `${summary}\nTrials that finished are cached; fix the cause and run the sweep again to resume.`
        })
      }
    })
).pipe(Command.withDescription("Run every trial of a pipeline's sweep (grid, zip, random, seeds), sharing equal nodes"))
