/**
 * `distillery ls`: the recorded sweeps and runs, newest first. A sweep's trial runs are listed under
 * the sweep (`distillery show <sweep>`), not among the runs, unless `--all`.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { ResultsStore } from "../store/ResultsStore.js"
import { render } from "./query.js"
import { formatOption, storeOption } from "./shared.js"

export const lsSql = (limit: number, all = false) => `
  SELECT r.run_id, r.pipeline, r.status, r.backend,
         strftime(r.started_at, '%Y-%m-%d %H:%M:%S') AS started,
         round(epoch(r.ended_at) - epoch(r.started_at), 1) AS seconds,
         count(n.node_id) AS nodes,
         count(n.node_id) FILTER (WHERE n.status = 'executed') AS executed,
         count(n.node_id) FILTER (WHERE n.status = 'cached') AS cached,
         count(n.node_id) FILTER (WHERE n.status = 'failed') AS failed
  FROM runs r LEFT JOIN nodes n USING (run_id)
  ${all ? "" : "WHERE r.sweep_id IS NULL"}
  GROUP BY ALL ORDER BY started DESC, r.run_id DESC LIMIT ${Math.max(1, Math.floor(limit))}`

export const sweepsSql = (limit: number) => `
  SELECT s.sweep_id, s.pipeline, s.status, s.trials,
         count(r.run_id) FILTER (WHERE r.status = 'succeeded') AS succeeded,
         count(r.run_id) FILTER (WHERE r.status = 'failed') AS failed,
         strftime(s.started_at, '%Y-%m-%d %H:%M:%S') AS started,
         round(epoch(s.ended_at) - epoch(s.started_at), 1) AS seconds
  FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.sweep_id
  GROUP BY ALL ORDER BY started DESC, s.sweep_id DESC LIMIT ${Math.max(1, Math.floor(limit))}`

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
      const store = yield* ResultsStore
      // A store written before sweeps existed has no sweeps table: list its runs alone.
      const sweeps = yield* store.query(sweepsSql(o.limit)).pipe(Effect.orElseSucceed(() => undefined))
      const runs = yield* store.query(lsSql(o.limit, o.all))
      if (runs.rows.length === 0 && (sweeps === undefined || sweeps.rows.length === 0)) {
        return yield* Console.log("no runs yet: try `distillery run pipelines/mnist-kd.yaml`")
      }
      // Machine formats get one table, the runs (`query "SELECT * FROM sweeps"` for the sweeps).
      if (o.format !== "table") return yield* Console.log(render(runs, o.format))
      if (sweeps !== undefined && sweeps.rows.length > 0) yield* Console.log(`sweeps\n${render(sweeps, "table")}\n\nruns`)
      yield* Console.log(runs.rows.length > 0 ? render(runs, "table") : "no stand-alone runs")
    })
).pipe(Command.withDescription("List recorded sweeps and runs, newest first"))
