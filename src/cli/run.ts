/**
 * `distillery run <pipeline>`: runs a pipeline (cached nodes are reused) and prints its results table.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import type { RunResult } from "../dag/Executor.js"
import type { Metrics } from "../domain/Artifact.js"
import { RunIdText } from "../domain/Ids.js"
import { formatTable } from "../store/Format.js"
import { backendOption, defaultWorkers, loadPipeline, refuseTakenId, storeOption } from "./shared.js"

const metricColumns = ["accuracy", "errors", "examples", "nll", "ece", "agreement", "fidelity_kl", "params", "latency_ms_per_example"]

/** One row per evaluate node: the model it measured and its metrics. */
export const resultsTable = (result: RunResult) => {
  const rows: Array<Array<unknown>> = []
  const present = new Set<string>()
  const evaluated: Array<{ node: string; status: string; metrics: Metrics }> = []
  for (const node of result.nodes) {
    for (const output of Object.values(node.result?.outputs ?? {})) {
      if (output._tag === "Metrics") {
        evaluated.push({ node: node.id, status: node.status, metrics: output })
        for (const name of Object.keys(output.values)) present.add(name)
      }
    }
  }
  const columns = metricColumns.filter((c) => present.has(c))
  for (const e of evaluated) rows.push([e.node, e.metrics.subject, ...columns.map((c) => e.metrics.values[c] ?? null)])
  return { columns: ["node", "model", ...columns], types: [], rows }
}

export const summaryLine = (result: RunResult): string => {
  const count = (s: string) => result.nodes.filter((n) => n.status === s).length
  return `run ${result.runId}: ${result.nodes.length} nodes, ${count("executed")} executed, ${count("cached")} cached`
}

export const run = Command.make(
  "run",
  {
    pipeline: Args.text({ name: "pipeline" }).pipe(Args.withDescription("the pipeline YAML file")),
    store: storeOption,
    backend: backendOption,
    force: Options.boolean("force").pipe(Options.withDescription("recompute every node, ignoring the cache")),
    rerun: Options.text("rerun").pipe(
      Options.withDescription("recompute this node and everything downstream of it (repeatable)"),
      Options.repeated
    ),
    concurrency: Options.integer("concurrency").pipe(
      Options.withDescription("how many nodes compute at once"),
      Options.withDefault(2)
    ),
    workers: Options.integer("workers").pipe(
      Options.withDescription("worker threads for training and generation, so independent nodes use every core (0: all on the main thread)"),
      Options.withDefault(defaultWorkers)
    ),
    runId: Options.text("run-id").pipe(Options.withSchema(RunIdText), Options.withDescription("the id to give this run"), Options.optional)
  },
  (o) =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipeline(o.pipeline)
      if (Option.isSome(o.runId)) yield* refuseTakenId("run", o.runId.value)
      const unknown = o.rerun.filter((id) => !pipeline.nodes.some((n) => n.id === id))
      if (unknown.length > 0) {
        yield* Console.error(`warning: --rerun names no node of this pipeline: ${unknown.join(", ")}`)
      }
      const { Executor } = yield* Effect.promise(() => import("../dag/Executor.js"))
      const executor = yield* Executor
      const result = yield* executor.run(pipeline, {
        force: o.force,
        rerun: o.rerun,
        concurrency: o.concurrency,
        ...(Option.isSome(o.runId) ? { runId: o.runId.value } : {})
      })
      const table = resultsTable(result)
      if (table.rows.length > 0) yield* Console.log(formatTable(table))
      yield* Console.log(summaryLine(result))
    })
).pipe(Command.withDescription("Run a pipeline: every node in dependency order, cached results reused"))
