/**
 * `distillery validate <pipeline>`: runs every load-time check and prints the nodes with their cache keys.
 */
import { Args, Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { pipelineCacheKeys } from "../dag/PipelineKeys.js"
import { formatTable } from "../store/Format.js"
import { loadPipeline } from "./shared.js"

export const validate = Command.make(
  "validate",
  { pipeline: Args.text({ name: "pipeline" }).pipe(Args.withDescription("the pipeline YAML file")) },
  (o) =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipeline(o.pipeline)
      const keys = pipelineCacheKeys(pipeline)
      yield* Console.log(
        formatTable({
          columns: ["node", "kind", "inputs", "cache key"],
          types: [],
          rows: pipeline.nodes.map((n) => [
            n.id,
            n.kind.kind,
            Object.entries(n.inputs)
              .map(([port, ref]) => `${port}=${ref.node}.${ref.port}`)
              .join(" "),
            keys.get(n.id)!.slice(0, 12)
          ])
        })
      )
      yield* Console.log(`${o.pipeline}: valid (${pipeline.nodes.length} nodes)`)
    })
).pipe(Command.withDescription("Check a pipeline without running it: kinds, params, wiring, cycles"))
