/**
 * `distillery graph <pipeline>`: the pipeline's DAG as Mermaid flowchart text.
 */
import { Args, Command } from "@effect/cli"
import { Console, Effect } from "effect"
import type { Pipeline } from "../pipeline/Pipeline.js"
import { loadPipeline } from "./shared.js"

/** Mermaid `flowchart LR`: one box per node (id and kind), one labelled edge per input. */
export const toMermaid = (pipeline: Pipeline): string => {
  const safe = (id: string) => id.replace(/[^A-Za-z0-9_]/g, "_")
  const lines = ["flowchart LR"]
  for (const node of pipeline.nodes) lines.push(`  ${safe(node.id)}["${node.id}<br/><i>${node.kind.kind}</i>"]`)
  for (const node of pipeline.nodes) {
    for (const [port, ref] of Object.entries(node.inputs)) {
      lines.push(`  ${safe(ref.node)} -->|${ref.port} → ${port}| ${safe(node.id)}`)
    }
  }
  return lines.join("\n")
}

export const graph = Command.make(
  "graph",
  { pipeline: Args.text({ name: "pipeline" }).pipe(Args.withDescription("the pipeline YAML file")) },
  (o) => Effect.flatMap(loadPipeline(o.pipeline), (p) => Console.log(toMermaid(p)))
).pipe(Command.withDescription("Print the pipeline's DAG as Mermaid text"))
