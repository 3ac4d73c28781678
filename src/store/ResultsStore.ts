/**
 * The results store: one DuckDB database (`results.duckdb`) holding every run, every node execution,
 * every metric and every per-example row, so that experiments are compared with SQL.
 *
 * Tables (created when missing; `schema_version` records the layout):
 * - `runs`      one row per pipeline run (status running -> succeeded | failed | interrupted)
 * - `nodes`     one row per node per run: kind, version, cache key, params/inputs/info as JSON,
 *               executed | cached | failed, duration
 * - `metrics`   (run, node, cache key, name, step?, value)
 * - `examples`  per-example rows: label, prediction, confidence, entropy, loss, filter decision
 * - `generations` a language model's samples: prompt, text, tokens, mean log-prob, finish reason, teacher NLL
 * - `sweeps`, `sweep_trials`, `trial_params` and the views `trial_results`, `trials`, `summary`:
 *   see Views.ts
 *
 * This module is the service, its errors and its row types; DuckDbStore.ts is the implementation,
 * imported when a layer is built, so that verbs that never open the store never load DuckDB.
 * Several processes share one store: every operation opens the file, runs in one transaction and closes
 * it, waiting (bounded) while another process holds it; see DuckDbStore.ts for the design and why.
 * The in-memory store keeps one connection for the layer's life. In a process the operations on a file
 * take turns, so statements and appenders never interleave. Timestamps come from `Clock` and are stored
 * as UTC `TIMESTAMP`s.
 */
import type { Duration, Option } from "effect"
import { Context, Effect, Layer, Schema } from "effect"
import type { CacheKey, RunId } from "../domain/Ids.js"
import type { ExampleRow, GenerationRow, MetricRow } from "../domain/Results.js"

// ---------------------------------------------------------------------------------------------------
// Errors

/** A SQL statement DuckDB rejected; `message` is DuckDB's own (e.g. the unknown table and a suggestion). */
export class QueryError extends Schema.TaggedError<QueryError>()("QueryError", {
  sql: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** Opening, migrating or writing the results store failed. */
export class ResultsStoreError extends Schema.TaggedError<ResultsStoreError>()("ResultsStoreError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** The database file stayed locked by another process for longer than the store waits. */
export class ResultsStoreLockedError extends Schema.TaggedError<ResultsStoreLockedError>()("ResultsStoreLockedError", {
  path: Schema.String,
  /** The holder's pid, when DuckDB reports it. */
  pid: Schema.optional(Schema.Number),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

// ---------------------------------------------------------------------------------------------------
// Models

export type RunStatus = "running" | "succeeded" | "failed" | "interrupted"
export type NodeStatus = "executed" | "cached" | "failed"

export interface StartRun {
  readonly runId: RunId
  /** The pipeline's name. */
  readonly pipeline: string
  /** The file it was loaded from (or a description for pipelines-as-code). */
  readonly pipelinePath: string
  /** The tfjs backend in use. */
  readonly backend: string
  readonly sweepId?: string | undefined
  readonly trial?: number | undefined
}

export interface RecordNode {
  readonly runId: RunId
  readonly nodeId: string
  readonly kind: string
  readonly kindVersion: number
  readonly cacheKey: CacheKey
  /** Resolved params (encoded form), stored as JSON. */
  readonly params: unknown
  /** Input port -> upstream key, stored as JSON. */
  readonly inputs: unknown
  readonly status: NodeStatus
  readonly durationMs: number
  /** Free-form facts from the node, stored as JSON. */
  readonly info?: unknown
  /** When the node started, epoch milliseconds; defaults to now minus `durationMs`. */
  readonly startedAt?: number | undefined
  /** The node's seed (part of its cache key). */
  readonly seed?: number | undefined
}

export type SweepStatus = "running" | "succeeded" | "failed" | "interrupted"

export interface StartSweep {
  readonly sweepId: string
  readonly pipeline: string
  readonly pipelinePath: string
  /** The swept param paths. */
  readonly params: ReadonlyArray<string>
  /** The node whose metrics paired differences subtract. */
  readonly baseline?: string | undefined
  readonly trials: ReadonlyArray<{
    readonly trial: number
    readonly point: number
    readonly runId: string
    readonly seed: number
    readonly params: ReadonlyArray<readonly [string, unknown]>
  }>
}

/** A `nodes` row as read back. */
export interface NodeRecord {
  readonly runId: RunId
  readonly nodeId: string
  readonly kind: string
  readonly kindVersion: number
  readonly cacheKey: CacheKey
  readonly params: unknown
  readonly inputs: unknown
  readonly status: NodeStatus
  readonly durationMs: number
  readonly info: unknown
  /** ISO-8601 UTC. */
  readonly startedAt: string
  /** The node's seed; undefined for rows recorded before seeds were. */
  readonly seed?: number | undefined
}

/**
 * A query's result as plain JS: BIGINTs are numbers when safe (decimal strings otherwise), timestamps
 * ISO-8601 strings, DATEs `YYYY-MM-DD`, JSON columns parsed, NULL `null`. `types` are DuckDB's names
 * (`JSON` for JSON columns).
 */
export interface QueryResult {
  readonly columns: ReadonlyArray<string>
  readonly types: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<unknown>>
}

/** What a node recorded while computing its result, written with its `nodes` row in one transaction. */
export interface RecordedRows {
  readonly metrics: ReadonlyArray<MetricRow>
  readonly examples: ReadonlyArray<ExampleRow>
  readonly generations: ReadonlyArray<GenerationRow>
}

export type QueryParams = ReadonlyArray<unknown> | Readonly<Record<string, unknown>>

export interface ResultsStoreService {
  /** The database file, or ":memory:". */
  readonly path: string
  readonly readOnly: boolean
  readonly startRun: (run: StartRun) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  readonly finishRun: (
    runId: RunId,
    status: Exclude<RunStatus, "running">,
    error?: string
  ) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  readonly recordNode: (node: RecordNode) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  /**
   * Records `node` with its metrics, example rows and samples in one transaction: a reader sees all of
   * them or none, and a process killed while writing leaves none.
   */
  readonly recordResult: (node: RecordNode, rows: RecordedRows) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  /**
   * Records `node`, a cache hit, from the earliest earlier record of its cache key: that record's info
   * and metrics are copied, and its example rows are shared (they are stored per key). False, writing
   * nothing, when the key was never recorded: then record it from the artifact.
   */
  readonly recordCachedNode: (node: RecordNode) => Effect.Effect<boolean, ResultsStoreError | ResultsStoreLockedError>
  readonly recordMetrics: (
    runId: RunId,
    nodeId: string,
    cacheKey: CacheKey,
    rows: ReadonlyArray<MetricRow>
  ) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  /**
   * The per-example rows of the result `cacheKey`, stored once: a later call for the same key (a cache
   * hit) adds nothing. The `examples` view shows them for every run whose `nodes` row has the key.
   */
  readonly recordExamples: (cacheKey: CacheKey, rows: ReadonlyArray<ExampleRow>) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  /** A language model's samples of the result `cacheKey`, stored once as example rows are; the `generations` view. */
  readonly recordGenerations: (cacheKey: CacheKey, rows: ReadonlyArray<GenerationRow>) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  /** Runs SQL (`$1`/`?` positional or `$name` params) and reads the whole result. */
  readonly query: (sql: string, params?: QueryParams) => Effect.Effect<QueryResult, QueryError | ResultsStoreError | ResultsStoreLockedError>
  /** The newest `nodes` row for `nodeId` in runs of `pipeline`. */
  readonly lastNodeRecord: (
    nodeId: string,
    pipeline: string
  ) => Effect.Effect<Option.Option<NodeRecord>, ResultsStoreError | ResultsStoreLockedError>
  /** Records a sweep (status running) with every trial and its params, before any trial runs. */
  readonly startSweep: (sweep: StartSweep) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  readonly finishSweep: (sweepId: string, status: Exclude<SweepStatus, "running">) => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
  /**
   * Regenerates the `trials` and `summary` views with a column per swept param and per
   * `<node>.<metric>` found in the store (the union over all sweeps).
   */
  readonly refreshViews: () => Effect.Effect<void, ResultsStoreError | ResultsStoreLockedError>
}

// ---------------------------------------------------------------------------------------------------
// Schema

// ---------------------------------------------------------------------------------------------------
// Service

/** DuckDbStore.ts, loaded with the first layer built. */
const loadImplementation = Effect.promise(() => import("./DuckDbStore.js"))

/** Runs, node executions, metrics and per-example rows in DuckDB. */
export class ResultsStore extends Context.Tag("distillery/ResultsStore")<ResultsStore, ResultsStoreService>() {
  /**
   * The store in the DuckDB file at `file` (created with its directory if missing). `readOnly` opens an
   * existing file for queries only, without creating or migrating anything. `lockTimeout` (default 2
   * minutes) is how long an operation waits while another process holds the file.
   */
  static readonly layer = (
    file: string,
    options?: { readonly readOnly?: boolean; readonly lockTimeout?: Duration.DurationInput }
  ): Layer.Layer<ResultsStore, ResultsStoreError | ResultsStoreLockedError> =>
    Layer.scoped(
      ResultsStore,
      Effect.flatMap(loadImplementation, (m) =>
        m.make({ path: file, readOnly: options?.readOnly ?? false, lockTimeout: options?.lockTimeout }))
    )

  /** An empty in-memory store, gone when the layer is released. */
  static readonly layerMemory: Layer.Layer<ResultsStore, ResultsStoreError> = Layer.scoped(
    ResultsStore,
    Effect.flatMap(loadImplementation, (m) => m.make({ path: m.MEMORY, readOnly: false })).pipe(
      Effect.catchTag("ResultsStoreLockedError", (e) => Effect.die(e))
    )
  )
}
