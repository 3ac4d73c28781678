/**
 * `distillery show <run>`: one run's nodes (executed or cached, how long) and its final metrics.
 */
import { Args, Command } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import { formatTable } from "../store/Format.js"
import { ResultsStore } from "../store/ResultsStore.js"
import { storeOption } from "./shared.js"

export class UnknownRunError extends Schema.TaggedError<UnknownRunError>()("UnknownRunError", {
  run: Schema.String,
  message: Schema.String
}) {}

export const show = Command.make(
  "show",
  { run: Args.text({ name: "run" }).pipe(Args.withDescription("a run id (or a unique prefix); `last` for the newest")), store: storeOption },
  (o) =>
    Effect.gen(function* () {
      const store = yield* ResultsStore
      const matches = yield* store.query(
        o.run === "last"
          ? "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1"
          : "SELECT run_id FROM runs WHERE starts_with(run_id, $1) ORDER BY started_at DESC",
        o.run === "last" ? [] : [o.run]
      )
      if (matches.rows.length !== 1) {
        const recent = yield* store.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 5")
        return yield* new UnknownRunError({
          run: o.run,
          message:
            matches.rows.length === 0
              ? `no run '${o.run}'; recent runs: ${recent.rows.map((r) => r[0]).join(", ") || "none"}`
              : `'${o.run}' matches ${matches.rows.length} runs: ${matches.rows.map((r) => r[0]).join(", ")}`
        })
      }
      const runId = String(matches.rows[0]![0])
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
).pipe(Command.withDescription("Show one run: its nodes and final metrics"))
