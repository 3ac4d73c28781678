/**
 * `distillery report <sweep|run>`: writes a self-contained HTML report (inline CSS, JS and data) with
 * learning curves, final metrics, teacher-student agreement and where each model goes wrong; for a
 * sweep, a metric against a swept param with 95% confidence bars across seeds.
 */
import { Args, Command, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Console, Effect, Option, Schema } from "effect"
import * as path from "node:path"
import { storeOption } from "./shared.js"

/** The report file could not be written. */
export class ReportWriteError extends Schema.TaggedError<ReportWriteError>()("ReportWriteError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** Writes `text` to `file` atomically: a temp file beside it, then a rename, so no reader sees half a page. */
export const writeAtomically = (file: string, text: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = path.dirname(path.resolve(file))
    const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`)
    const fail = (what: string) => (cause: unknown) =>
      new ReportWriteError({ path: file, message: `could not ${what} ${file}: ${String((cause as { message?: unknown }).message ?? cause)}`, cause })
    yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(fail("create the directory of")))
    yield* fs.writeFileString(temp, text).pipe(
      Effect.zipRight(fs.rename(temp, file)),
      Effect.mapError(fail("write")),
      Effect.tapError(() => fs.remove(temp).pipe(Effect.ignore))
    )
  })

/** `report-<id>.html`, with characters unsafe in file names replaced. */
export const defaultReportFile = (id: string): string => `report-${id.replace(/[^A-Za-z0-9._-]+/g, "_")}.html`

export const report = Command.make(
  "report",
  {
    id: Args.text({ name: "sweep|run" }).pipe(
      Args.withDescription("a sweep id or a run id (or a unique prefix of one); `last` for the newest")
    ),
    out: Options.text("out").pipe(
      Options.withDescription("the HTML file to write (default report-<id>.html in the current directory)"),
      Options.optional
    ),
    metric: Options.text("metric").pipe(
      Options.withDescription("sweeps: the evaluate nodes' final metric to plot (default accuracy)"),
      Options.optional
    ),
    // @effect/cli makes a one-letter name a short flag: `-x`, with `--x-axis` as its long form.
    x: Options.text("x").pipe(
      Options.withAlias("x-axis"),
      Options.withDescription("sweeps: the swept param on the x axis, by path or last part (default: the first numeric one)"),
      Options.optional
    ),
    group: Options.text("group").pipe(
      Options.withDescription("sweeps: comma-separated swept params, one line per combination (default: the others); `none` for one line"),
      Options.optional
    ),
    store: storeOption
  },
  (o) =>
    Effect.gen(function*() {
      const [{ renderHtml }, { loadReport }] = yield* Effect.promise(() => Promise.all([import("../report/Html.js"), import("../report/Load.js")]))
      const group = Option.map(o.group, (g) => (g.trim() === "none" ? [] : g.split(",").map((s) => s.trim()).filter((s) => s !== "")))
      const data = yield* loadReport(o.id, {
        metric: Option.getOrUndefined(o.metric),
        x: Option.getOrUndefined(o.x),
        group: Option.getOrUndefined(group)
      })
      if (data.kind === "run" && [o.metric, o.x, o.group].some(Option.isSome)) {
        yield* Console.error(`note: --metric, --x and --group apply to sweeps; ${data.id} is a run`)
      }
      const file = Option.getOrElse(o.out, () => defaultReportFile(data.id))
      yield* writeAtomically(file, renderHtml(data))
      const charts = (data.sweep?.charts.length ?? 0) + (data.curves.views.length > 0 ? 1 : 0) +
        (data.agreement.length > 0 ? 1 : 0) + data.confusion.length
      yield* Console.log(`wrote ${file}: ${data.kind} ${data.id}, ${charts} chart${charts === 1 ? "" : "s"}`)
    })
).pipe(Command.withDescription("Write a self-contained HTML report of a run or a sweep: curves, metrics, agreement, mistakes"))
