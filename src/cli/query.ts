/**
 * `distillery query "<SQL>"`: asks the results store (runs, nodes, metrics, examples) a question in SQL.
 */
import { Args, Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { formatCsv, formatJson, formatTable } from "../store/Format.js"
import type { QueryResult } from "../store/ResultsStore.js"
import { ResultsStore } from "../store/ResultsStore.js"
import { formatOption, storeOption } from "./shared.js"

export const render = (result: QueryResult, format: "table" | "csv" | "json"): string =>
  format === "csv" ? formatCsv(result) : format === "json" ? formatJson(result) : formatTable(result)

export const query = Command.make(
  "query",
  { sql: Args.text({ name: "sql" }).pipe(Args.withDescription("the SQL to run")), format: formatOption, store: storeOption },
  (o) =>
    Effect.gen(function* () {
      const store = yield* ResultsStore
      const result = yield* store.query(o.sql)
      yield* Console.log(render(result, o.format))
    })
).pipe(Command.withDescription("Query the results in SQL: tables runs, nodes, metrics, examples, generations"))
