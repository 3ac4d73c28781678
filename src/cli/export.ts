/**
 * `distillery export <sweep|run> --format parquet|csv [--out dir]`: writes a sweep's `trials`,
 * `summary` and `trial_results`, or a run's `nodes`, `metrics` and `examples`, as files other tools
 * read (pandas, polars, R, DuckDB itself), with DuckDB's `COPY ... TO`.
 */
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import { ResultsStore } from "../store/ResultsStore.js"
import { sqlIdent, sqlString } from "../store/Views.js"
import { resolveTarget } from "./show.js"
import { storeOption } from "./shared.js"

export class ExportError extends Schema.TaggedError<ExportError>()("ExportError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export type ExportFormat = "parquet" | "csv"

export interface ExportResult {
  readonly kind: "run" | "sweep"
  readonly id: string
  readonly files: ReadonlyArray<{ readonly table: string; readonly path: string; readonly rows: number }>
}

/** The tables of a sweep or a run, each as one SELECT filtered to it. */
const tablesOf = (kind: "run" | "sweep", id: string): ReadonlyArray<readonly [string, string]> =>
  kind === "sweep"
    ? [
        ["trials", `SELECT * FROM trials WHERE sweep_id = ${sqlString(id)} ORDER BY trial`],
        ["summary", `SELECT * FROM summary WHERE sweep_id = ${sqlString(id)} ORDER BY point, node_id, metric`],
        ["trial_results", `SELECT * FROM trial_results WHERE sweep_id = ${sqlString(id)} ORDER BY trial, node_id, metric`]
      ]
    : [
        ["nodes", `SELECT * FROM nodes WHERE run_id = ${sqlString(id)} ORDER BY started_at`],
        ["metrics", `SELECT * FROM metrics WHERE run_id = ${sqlString(id)} ORDER BY node_id, name, step`],
        ["examples", `SELECT * FROM examples WHERE run_id = ${sqlString(id)} ORDER BY node_id, split, example_id`]
      ]

/** Writes the tables of `id` (a sweep or run id, a unique prefix, or `last`) into `out`. */
export const exportResults = (id: string, format: ExportFormat, out?: string) =>
  Effect.gen(function* () {
    const store = yield* ResultsStore
    const target = yield* resolveTarget(id)
    const dir = resolve(out ?? join("exports", target.id))
    yield* Effect.try({
      try: () => mkdirSync(dir, { recursive: true }),
      catch: (cause) => new ExportError({ path: dir, message: `could not create ${dir}: ${String(cause)}`, cause })
    })
    const files: Array<ExportResult["files"][number]> = []
    for (const [table, select] of tablesOf(target.kind, target.id)) {
      // The sweep views have a column per param and metric of every sweep: keep this one's.
      const probe = yield* store.query(`SELECT * FROM (${select}) LIMIT 0`)
      const counts = probe.columns.length === 0
        ? []
        : (yield* store.query(`SELECT ${probe.columns.map((c) => `count(${sqlIdent(c)})`).join(", ")}, count(*) FROM (${select})`)).rows[0]!
      const total = Number(counts[counts.length - 1] ?? 0)
      const columns = probe.columns.filter((_, i) => total === 0 || Number(counts[i]) > 0)
      const path = join(dir, `${table}.${format}`)
      const options = format === "parquet" ? "(FORMAT parquet)" : "(FORMAT csv, HEADER true)"
      yield* store.query(
        `COPY (SELECT ${columns.map(sqlIdent).join(", ")} FROM (${select})) TO ${sqlString(path)} ${options}`
      )
      files.push({ table, path, rows: total })
    }
    return { kind: target.kind, id: target.id, files } satisfies ExportResult
  })

export const exportCommand = Command.make(
  "export",
  {
    id: Args.text({ name: "id" }).pipe(Args.withDescription("a sweep or run id (or a unique prefix); `last` for the newest")),
    format: Options.choice("format", ["parquet", "csv"] as const).pipe(
      Options.withDescription("file format"),
      Options.withDefault("parquet" as const)
    ),
    out: Options.directory("out").pipe(Options.withDescription("where to write (default exports/<id>)"), Options.optional),
    store: storeOption
  },
  (o) =>
    Effect.gen(function* () {
      const result = yield* exportResults(o.id, o.format, o.out._tag === "Some" ? o.out.value : undefined)
      for (const f of result.files) yield* Console.log(`${f.path}  (${f.rows} rows)`)
      yield* Console.log(`exported ${result.kind} ${result.id}`)
    })
).pipe(Command.withDescription("Write a sweep's trials/summary/trial_results or a run's nodes/metrics/examples as Parquet or CSV"))
