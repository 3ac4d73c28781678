/**
 * `distillery show <run|sweep>`: one run's nodes (executed or cached, how long) and its final metrics;
 * or one sweep's trials (params, status, the main metric) and its results per param combination.
 */
import { Args, Command } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import { formatTable } from "../store/Format.js"
import type { QueryResult } from "../store/ResultsStore.js"
import { ResultsStore } from "../store/ResultsStore.js"
import { storeOption } from "./shared.js"
import { sweepTable } from "./sweep.js"

export class UnknownRunError extends Schema.TaggedError<UnknownRunError>()("UnknownRunError", {
  run: Schema.String,
  message: Schema.String
}) {}

export type Target = { readonly kind: "run" | "sweep"; readonly id: string }

/**
 * Which run or sweep `id` names: an exact id, else a unique prefix; `last` is the newest stand-alone
 * run or sweep. Fails naming recent ids.
 */
export const resolveTarget = (id: string) =>
  Effect.gen(function* () {
    const store = yield* ResultsStore
    // A store no distillery with sweeps has written to (opened read-only) has no sweeps table.
    const hasSweeps = yield* store
      .query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'sweeps'")
      .pipe(Effect.map((r) => Number(r.rows[0]?.[0] ?? 0) > 0))
    const sweepsSource = hasSweeps ? "SELECT 'sweep' AS kind, sweep_id AS id, started_at FROM sweeps UNION ALL " : ""
    if (id === "last") {
      const newest = yield* store.query(
        `SELECT kind, id FROM (
           ${sweepsSource}SELECT 'run' AS kind, run_id AS id, started_at FROM runs WHERE sweep_id IS NULL)
         ORDER BY started_at DESC LIMIT 1`
      )
      const row = newest.rows[0]
      if (row !== undefined) return { kind: row[0] as "run" | "sweep", id: String(row[1]) } satisfies Target
    } else {
      const matches = yield* store.query(
        `SELECT kind, id FROM (
           ${sweepsSource}SELECT 'run' AS kind, run_id AS id, started_at FROM runs)
         WHERE id = $1 OR starts_with(id, $1) ORDER BY id = $1 DESC, started_at DESC`,
        [id]
      )
      const exact = matches.rows.filter((r) => r[1] === id)
      const chosen = exact.length > 0 ? exact : matches.rows
      if (chosen.length === 1) return { kind: chosen[0]![0] as "run" | "sweep", id: String(chosen[0]![1]) } satisfies Target
      if (chosen.length > 1) {
        return yield* new UnknownRunError({
          run: id,
          message: `'${id}' matches ${chosen.length} runs and sweeps: ${chosen.slice(0, 8).map((r) => r[1]).join(", ")}${chosen.length > 8 ? ", ..." : ""}`
        })
      }
    }
    const recent = yield* store.query("SELECT run_id FROM runs WHERE sweep_id IS NULL ORDER BY started_at DESC LIMIT 5")
    const sweeps = hasSweeps
      ? yield* store.query("SELECT sweep_id FROM sweeps ORDER BY started_at DESC LIMIT 3")
      : { rows: [] as ReadonlyArray<ReadonlyArray<unknown>> }
    return yield* new UnknownRunError({
      run: id,
      message: `no run '${id}'; recent runs: ${recent.rows.map((r) => r[0]).join(", ") || "none"}` +
        (sweeps.rows.length > 0 ? `; recent sweeps: ${sweeps.rows.map((r) => r[0]).join(", ")}` : "")
    })
  })

/** A result without the columns that are NULL in every row (a view's columns for other sweeps). */
export const dropEmptyColumns = (result: QueryResult, keep: ReadonlyArray<string> = []): QueryResult => {
  const used = result.columns.map((c, i) => keep.includes(c) || result.rows.some((r) => r[i] !== null && r[i] !== undefined))
  return {
    columns: result.columns.filter((_, i) => used[i]),
    types: result.types.filter((_, i) => used[i]),
    rows: result.rows.map((r) => r.filter((_, i) => used[i]))
  }
}

const showRun = (runId: string) =>
  Effect.gen(function* () {
    const store = yield* ResultsStore
    const run = yield* store.query(
      "SELECT run_id, pipeline, pipeline_path, status, backend, started_at, ended_at, error FROM runs WHERE run_id = $1",
      [runId]
    )
    yield* Console.log(formatTable(run))
    const nodes = yield* store.query(
      `SELECT node_id, kind, status, round(duration_ms / 1000, 2) AS seconds, left(cache_key, 12) AS cache_key
       FROM nodes WHERE run_id = $1 ORDER BY started_at`,
      [runId]
    )
    yield* Console.log(`\nnodes\n${formatTable(nodes)}`)
    const metrics = yield* store.query(
      // PIVOT takes no parameters; the id is one read back from the store, quoted as a literal.
      `PIVOT (SELECT node_id, name, value FROM metrics WHERE run_id = '${runId.replace(/'/g, "''")}' AND step IS NULL)
       ON name USING first(value) GROUP BY node_id ORDER BY node_id`
    )
    if (metrics.rows.length > 0) yield* Console.log(`\nfinal metrics\n${formatTable(metrics)}`)
  })

const showSweep = (sweepId: string) =>
  Effect.gen(function* () {
    const store = yield* ResultsStore
    const sweep = yield* store.query(
      `SELECT sweep_id, pipeline, pipeline_path, status, trials, baseline, started_at, ended_at, params FROM sweeps WHERE sweep_id = $1`,
      [sweepId]
    )
    yield* Console.log(formatTable(dropEmptyColumns({ ...sweep, columns: sweep.columns.slice(0, -1), rows: sweep.rows.map((r) => r.slice(0, -1)) })))
    const paths = (sweep.rows[0]?.[8] ?? []) as ReadonlyArray<string>
    const trials = yield* store.query("SELECT * FROM trials WHERE sweep_id = $1 ORDER BY trial", [sweepId])
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
    const failed = yield* store.query(
      "SELECT trial, error FROM runs WHERE sweep_id = $1 AND status = 'failed' ORDER BY trial",
      [sweepId]
    )
    if (failed.rows.length > 0) yield* Console.log(`\nfailed trials\n${formatTable(failed, { maxCellWidth: 120 })}`)
    const table = yield* sweepTable(sweepId, paths)
    if (Option.isSome(table)) yield* Console.log(`\n${table.value.title}\n${formatTable(table.value.table, { maxCellWidth: 60 })}`)
    yield* Console.log(`\nevery column: distillery query "SELECT * FROM trials WHERE sweep_id = '${sweepId}'"`)
  })

export const show = Command.make(
  "show",
  {
    run: Args.text({ name: "id" }).pipe(Args.withDescription("a run or sweep id (or a unique prefix); `last` for the newest")),
    store: storeOption
  },
  (o) =>
    Effect.gen(function* () {
      const target = yield* resolveTarget(o.run)
      yield* target.kind === "sweep" ? showSweep(target.id) : showRun(target.id)
    })
).pipe(Command.withDescription("Show one run (nodes, final metrics) or one sweep (trials, results per param combination)"))
