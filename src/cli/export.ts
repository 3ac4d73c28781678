/**
 * `distillery export <sweep|run> --format parquet|csv [--out dir]`: writes a sweep's `trials`,
 * `summary` and `trial_results`, or a run's `nodes`, `metrics` and `examples`, as files other tools
 * read (pandas, polars, R, DuckDB itself), with DuckDB's `COPY ... TO`.
 */
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import * as ReadModel from "../store/ReadModel.js"
import { storeOption } from "./shared.js"

export class ExportError extends Schema.TaggedError<ExportError>()("ExportError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export type ExportFormat = ReadModel.FileFormat

export interface ExportResult {
  readonly kind: "run" | "sweep"
  readonly id: string
  readonly files: ReadonlyArray<ReadModel.WrittenTable>
}

/** Writes the tables of `id` (a sweep or run id, a unique prefix, or `last`) into `out`. */
export const exportResults = (id: string, format: ExportFormat, out?: string) =>
  Effect.gen(function* () {
    const target = yield* ReadModel.resolveTarget(id)
    const dir = resolve(out ?? join("exports", target.id))
    yield* Effect.try({
      try: () => mkdirSync(dir, { recursive: true }),
      catch: (cause) => new ExportError({ path: dir, message: `could not create ${dir}: ${String(cause)}`, cause })
    })
    const files = yield* ReadModel.writeTables(target, dir, format)
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
