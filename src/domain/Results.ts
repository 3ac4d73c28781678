/**
 * The rows a node reports to the results store: final and per-step metrics, per-example rows (what a
 * model predicted, what a filter decided) and a language model's samples. Nodes produce them, the
 * executor hands them to the results store, and the read model (`store/ReadModel.ts`) reads them back.
 */
import type { SplitName } from "./Artifact.js"

/** One per-example row in the results store: what this node said about one example. */
export interface ExampleRow {
  readonly split: SplitName
  readonly exampleId: number
  readonly label: number
  /** Whose prediction this is (a model's node id), when the row is about a model's output. */
  readonly subject?: string
  readonly prediction?: number
  readonly confidence?: number
  readonly entropy?: number
  readonly loss?: number
  /** Filter decisions: "keep" or "drop", and why. */
  readonly decision?: "keep" | "drop"
  readonly reason?: string
}

/** One sampled continuation in the results store (the `generations` view): a row of a Generations artifact. */
export interface GenerationRow {
  /** The row's index in its artifact. */
  readonly row: number
  readonly promptId: string
  /** Which of the prompt's n samples, 0-based. */
  readonly sample: number
  readonly seed: number
  readonly prompt: string
  readonly text: string
  /** Generated tokens. */
  readonly tokens: number
  readonly meanLogProb: number
  readonly finishReason: string
  /** The scoring model's negative log-likelihood per generated token, when the row was scored. */
  readonly teacherNll?: number
}

export interface MetricRow {
  readonly name: string
  /** Step (epoch) for curves; absent for final metrics. */
  readonly step?: number
  readonly value: number
}
