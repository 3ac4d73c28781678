/**
 * `distillery ls`: the recorded runs, newest first.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { ResultsStore } from "../store/ResultsStore.js"
import { render } from "./query.js"
import { formatOption, storeOption } from "./shared.js"

export const lsSql = (limit: number) => `
  SELECT r.run_id, r.pipeline, r.status, r.backend,
         strftime(r.started_at, '%Y-%m-%d %H:%M:%S') AS started,
         round(epoch(r.ended_at) - epoch(r.started_at), 1) AS seconds,
         count(n.node_id) AS nodes,
         count(n.node_id) FILTER (WHERE n.status = 'executed') AS executed,
         count(n.node_id) FILTER (WHERE n.status = 'cached') AS cached,
         count(n.node_id) FILTER (WHERE n.status = 'failed') AS failed
  FROM runs r LEFT JOIN nodes n USING (run_id)
  GROUP BY ALL ORDER BY started DESC, r.run_id DESC LIMIT ${Math.max(1, Math.floor(limit))}`

export const ls = Command.make(
  "ls",
  {
    limit: Options.integer("limit").pipe(Options.withDescription("how many runs"), Options.withDefault(20)),
    format: formatOption,
    store: storeOption
  },
  (o) =>
    Effect.gen(function* () {
      const store = yield* ResultsStore
      const result = yield* store.query(lsSql(o.limit))
      yield* Console.log(result.rows.length === 0 ? "no runs yet: try `distillery run pipelines/mnist-kd.yaml`" : render(result, o.format))
    })
).pipe(Command.withDescription("List recorded runs, newest first"))
