/**
 * A node kind is data: a name, a version (part of every cache key), a params Schema, typed input and
 * output ports, and an Effect that computes the outputs. Built-in kinds live beside this file; plugins
 * export more. The executor gives `run` a `NodeContext` with decoded params, resolved inputs and the
 * sinks for progress, metrics, per-example rows and samples.
 */
import { Effect, Schema } from "effect"
import type { PortType, PortValues } from "../domain/Artifact.js"
import type { ExampleRow, GenerationRow, MetricRow } from "../domain/Results.js"

export interface InputSpec {
  readonly type: PortType
  readonly optional?: boolean
  readonly description?: string
}

export type InputSpecs = Readonly<Record<string, InputSpec>>
export type OutputSpecs = Readonly<Record<string, PortType>>

export type InputValues<I extends InputSpecs> = {
  readonly [K in keyof I]: I[K]["optional"] extends true ? PortValues[I[K]["type"]] | undefined : PortValues[I[K]["type"]]
}

export type OutputValues<O extends OutputSpecs> = { readonly [K in keyof O]: PortValues[O[K]] }

/** Progress of a long node, shown by the CLI (epoch, loss, ETA). */
export interface Progress {
  /** Units done and in all, e.g. epochs or batches. */
  readonly done: number
  readonly total: number
  readonly unit: string
  /** Short key/value facts: loss, accuracy... */
  readonly facts?: Readonly<Record<string, number | string>>
}

export type { ExampleRow, GenerationRow, MetricRow } from "../domain/Results.js"

export interface NodeContext<P, I> {
  readonly nodeId: string
  readonly kind: string
  readonly params: P
  readonly inputs: I
  /** For each input port, the id of the upstream node that produced it (to name subjects in results). */
  readonly inputNodes: Readonly<Record<string, string>>
  /** The node's seed: its own `seed:` when the pipeline gives one, else the pipeline's (a sweep trial's) seed. Derive sub-streams from it with `deriveSeed`. */
  readonly seed: number
  /** The tfjs backend in use ("wasm", "cpu", ...). */
  readonly backend: string
  readonly progress: (progress: Progress) => void
  readonly metric: (row: MetricRow) => void
  readonly examples: (rows: ReadonlyArray<ExampleRow>) => void
  /** A language model's samples, one row each (the `generations` view). */
  readonly generations: (rows: ReadonlyArray<GenerationRow>) => void
  /** Free-form facts about the result recorded with the node (e.g. the resolved objective). */
  readonly info: (facts: Readonly<Record<string, unknown>>) => void
}

/** The one expected failure of a node's computation: names the node and says what went wrong. */
export class NodeError extends Schema.TaggedError<NodeError>()("NodeError", {
  node: Schema.String,
  kind: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export interface NodeKind<P = any, I extends InputSpecs = InputSpecs, O extends OutputSpecs = OutputSpecs, E = any> {
  readonly kind: string
  readonly version: number
  readonly description: string
  /** Decodes the YAML/TS params, filling defaults; its encoded form is what the cache key hashes. */
  readonly params: Schema.Schema<P, E, never>
  readonly inputs: I
  readonly outputs: O
  readonly run: (ctx: NodeContext<P, InputValues<I>>) => Effect.Effect<OutputValues<O>, NodeError>
  /**
   * What the result depends on beyond params and inputs (e.g. the content hash of a data file), added
   * to the cache key so that editing the file re-runs the node. Synchronous and cheap.
   */
  readonly fingerprint?: (params: P) => unknown
  /**
   * A long, CPU-bound computation (training, running a model over a dataset): when the executor has a
   * WorkerPool it runs such a node on a worker thread, so that independent ones use every core.
   */
  readonly heavy?: boolean
}

/** Declares a node kind with its types inferred (an identity function for inference). */
export const defineKind = <P, I extends InputSpecs, O extends OutputSpecs, E>(
  kind: NodeKind<P, I, O, E>
): NodeKind<P, I, O, E> => kind

export type AnyNodeKind = NodeKind<any, any, any, any>

/**
 * Loads a module that a kind's computation needs when the node first runs. Kinds import their tensor
 * code (tfjs, models, the trainer) this way, so that loading the registry, as `validate`, `schema` and
 * `--help` do, never loads tfjs.
 */
export const onRun = <M>(load: () => Promise<M>): Effect.Effect<M> => Effect.promise(load)
