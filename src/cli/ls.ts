/**
 * `distillery ls`: the recorded sweeps and runs, newest first. A sweep's trial runs are listed under
 * the sweep (`distillery show <sweep>`), not among the runs, unless `--all`.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as ReadModel from "../store/ReadModel.js"
import { render } from "./query.js"
import { formatOption, storeOption } from "./shared.js"

export const ls = Command.make(
  "ls",
  {
    limit: Options.integer("limit").pipe(Options.withDescription("how many runs (and sweeps)"), Options.withDefault(20)),
    all: Options.boolean("all").pipe(Options.withDescription("list the runs of sweep trials too")),
    format: formatOption,
    store: storeOption
  },
  (o) =>
    Effect.gen(function* () {
      // A store written before sweeps existed has no sweeps table: list its runs alone.
      const sweeps = Option.getOrUndefined(yield* ReadModel.listSweeps(o.limit))
      const runs = yield* ReadModel.listRuns({ limit: o.limit, all: o.all })
      if (runs.rows.length === 0 && (sweeps === undefined || sweeps.rows.length === 0)) {
        return yield* Console.log("no runs yet: try `distillery run pipelines/mnist-kd.yaml`")
      }
      // Machine formats get one table, the runs (`query "SELECT * FROM sweeps"` for the sweeps).
      if (o.format !== "table") return yield* Console.log(render(runs, o.format))
      if (sweeps !== undefined && sweeps.rows.length > 0) yield* Console.log(`sweeps\n${render(sweeps, "table")}\n\nruns`)
      yield* Console.log(runs.rows.length > 0 ? render(runs, "table") : "no stand-alone runs")
    })
).pipe(Command.withDescription("List recorded sweeps and runs, newest first"))
