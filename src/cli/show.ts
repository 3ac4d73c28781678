/**
 * `distillery show <run|sweep>`: one run's nodes (executed or cached, how long) and its final metrics;
 * or one sweep's trials (params, status, the main metric) and its results per param combination.
 */
import { Args, Command } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { formatTable } from "../store/Format.js"
import * as ReadModel from "../store/ReadModel.js"
import type { QueryResult } from "../store/ResultsStore.js"
import { storeOption } from "./shared.js"
import { sweepTable } from "./sweep.js"

/** Every verb fails alike on an id that names no run or sweep (`ReadModel.resolveTarget`). */
export { UnknownRunError } from "../store/ReadModel.js"

/** A result without the columns that are NULL in every row (a view's columns for other sweeps). */
export const dropEmptyColumns = (result: QueryResult, keep: ReadonlyArray<string> = []): QueryResult => {
  const used = result.columns.map((c, i) => keep.includes(c) || result.rows.some((r) => r[i] !== null && r[i] !== undefined))
  return {
    columns: result.columns.filter((_, i) => used[i]),
    types: result.types.filter((_, i) => used[i]),
    rows: result.rows.map((r) => r.filter((_, i) => used[i]))
  }
}

/** A table of plain rows (numbers right-aligned, as in a query result). */
const table = (columns: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<unknown>>): QueryResult => ({ columns, types: [], rows })

const showRun = (runId: string) =>
  Effect.gen(function* () {
    const run = yield* ReadModel.run(runId)
    yield* Console.log(formatTable(table(
      ["run_id", "pipeline", "pipeline_path", "status", "backend", "started_at", "ended_at", "error"],
      Option.toArray(run).map((r) => [r.runId, r.pipeline, r.pipelinePath, r.status, r.backend, r.startedAt, r.endedAt, r.error])
    )))
    const nodes = yield* ReadModel.nodes([runId])
    yield* Console.log(`\nnodes\n${formatTable(table(
      ["node_id", "kind", "status", "seconds", "cache_key"],
      nodes.map((n) => [n.nodeId, n.kind, n.status, Number.isNaN(n.durationMs) ? null : Math.round(n.durationMs / 10) / 100, n.cacheKey.slice(0, 12)])
    ))}`)
    // One row per node, one column per metric name (sorted), the first value recorded.
    const metrics = yield* ReadModel.finalMetrics([runId])
    const names = [...new Set(metrics.map((m) => m.name))].sort()
    const byNode = new Map<string, Map<string, number | null>>()
    for (const m of metrics) {
      const values = byNode.get(m.nodeId) ?? new Map<string, number | null>()
      if (!values.has(m.name)) values.set(m.name, m.value)
      byNode.set(m.nodeId, values)
    }
    const rows = [...byNode.keys()].sort().map((node) => [node, ...names.map((name) => byNode.get(node)!.get(name) ?? null)])
    if (rows.length > 0) yield* Console.log(`\nfinal metrics\n${formatTable(table(["node_id", ...names], rows))}`)
  })

const showSweep = (sweepId: string) =>
  Effect.gen(function* () {
    const sweep = Option.getOrUndefined(yield* ReadModel.sweep(sweepId))
    yield* Console.log(formatTable(dropEmptyColumns(table(
      ["sweep_id", "pipeline", "pipeline_path", "status", "trials", "baseline", "started_at", "ended_at"],
      sweep === undefined
        ? []
        : [[sweep.sweepId, sweep.pipeline, sweep.pipelinePath, sweep.status, sweep.trials, sweep.baseline, sweep.startedAt, sweep.endedAt]]
    ))))
    const paths = sweep?.params ?? []
    const trials = yield* ReadModel.trialsTable(sweepId)
    // The trials view has a column per metric of every node; show the params and each node's accuracy.
    const main = trials.columns.filter((c) => c.endsWith(".accuracy"))
    const wanted = ["trial", "seed", "status", ...paths, ...main]
    const pick = wanted.map((c) => trials.columns.indexOf(c)).filter((i) => i >= 0)
    const shown: QueryResult = {
      columns: pick.map((i) => trials.columns[i]!),
      types: pick.map((i) => trials.types[i]!),
      rows: trials.rows.map((r) => pick.map((i) => r[i]))
    }
    yield* Console.log(`\ntrials\n${formatTable(shown)}`)
    const failed = (yield* ReadModel.sweepRuns(sweepId)).filter((r) => r.status === "failed")
    if (failed.length > 0) {
      yield* Console.log(`\nfailed trials\n${formatTable(table(["trial", "error"], failed.map((r) => [r.trial, r.error])), { maxCellWidth: 120 })}`)
    }
    const summary = yield* sweepTable(sweepId, paths)
    if (Option.isSome(summary)) yield* Console.log(`\n${summary.value.title}\n${formatTable(summary.value.table, { maxCellWidth: 60 })}`)
    yield* Console.log(`\nevery column: distillery query "SELECT * FROM trials WHERE sweep_id = '${sweepId}'"`)
  })

/** Prints the run or sweep `id` names (an id, a unique prefix, or `last`). */
export const showTarget = (id: string) =>
  Effect.gen(function* () {
    const target = yield* ReadModel.resolveTarget(id)
    yield* target.kind === "sweep" ? showSweep(target.id) : showRun(target.id)
  })

export const show = Command.make(
  "show",
  {
    run: Args.text({ name: "id" }).pipe(Args.withDescription("a run or sweep id (or a unique prefix); `last` for the newest")),
    store: storeOption
  },
  (o) => showTarget(o.run)
).pipe(Command.withDescription("Show one run (nodes, final metrics) or one sweep (trials, results per param combination)"))
