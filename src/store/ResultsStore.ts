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
 * The DuckDB instance and connection are acquired in the layer's scope and closed with it
 * (Effect-TS/effect `packages/sql-sqlite-node/src/SqliteClient.ts`); every use of the connection holds
 * a one-permit semaphore, so statements and appenders never interleave. Timestamps come from `Clock`
 * and are stored as UTC `TIMESTAMP`s. DuckDB lets one process open a file for writing; another process
 * gets a `ResultsStoreLockedError` naming the holder's pid.
 */
import type { Option } from "effect"
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

/** The database file is held by another process (or already open in this one). */
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

export type QueryParams = ReadonlyArray<unknown> | Readonly<Record<string, unknown>>

export interface ResultsStoreService {
  /** The database file, or ":memory:". */
  readonly path: string
  readonly readOnly: boolean
  readonly startRun: (run: StartRun) => Effect.Effect<void, ResultsStoreError>
  readonly finishRun: (
    runId: RunId,
    status: Exclude<RunStatus, "running">,
    error?: string
  ) => Effect.Effect<void, ResultsStoreError>
  readonly recordNode: (node: RecordNode) => Effect.Effect<void, ResultsStoreError>
  /**
   * Records `node`, a cache hit, from the earliest earlier record of its cache key: that record's info
   * and metrics are copied, and its example rows are shared (they are stored per key). False, writing
   * nothing, when the key was never recorded: then record it from the artifact.
   */
  readonly recordCachedNode: (node: RecordNode) => Effect.Effect<boolean, ResultsStoreError>
  readonly recordMetrics: (
    runId: RunId,
    nodeId: string,
    cacheKey: CacheKey,
    rows: ReadonlyArray<MetricRow>
  ) => Effect.Effect<void, ResultsStoreError>
  /**
   * The per-example rows of the result `cacheKey`, stored once: a later call for the same key (a cache
   * hit) adds nothing. The `examples` view shows them for every run whose `nodes` row has the key.
   */
  readonly recordExamples: (cacheKey: CacheKey, rows: ReadonlyArray<ExampleRow>) => Effect.Effect<void, ResultsStoreError>
  /** A language model's samples of the result `cacheKey`, stored once as example rows are; the `generations` view. */
  readonly recordGenerations: (cacheKey: CacheKey, rows: ReadonlyArray<GenerationRow>) => Effect.Effect<void, ResultsStoreError>
  /** Runs SQL (`$1`/`?` positional or `$name` params) and reads the whole result. */
  readonly query: (sql: string, params?: QueryParams) => Effect.Effect<QueryResult, QueryError>
  /** The newest `nodes` row for `nodeId` in runs of `pipeline`. */
  readonly lastNodeRecord: (
    nodeId: string,
    pipeline: string
  ) => Effect.Effect<Option.Option<NodeRecord>, ResultsStoreError>
  /** Records a sweep (status running) with every trial and its params, before any trial runs. */
  readonly startSweep: (sweep: StartSweep) => Effect.Effect<void, ResultsStoreError>
  readonly finishSweep: (sweepId: string, status: Exclude<SweepStatus, "running">) => Effect.Effect<void, ResultsStoreError>
  /**
   * Regenerates the `trials` and `summary` views with a column per swept param and per
   * `<node>.<metric>` found in the store (the union over all sweeps).
   */
  readonly refreshViews: () => Effect.Effect<void, ResultsStoreError>
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
   * existing file for queries only, without creating or migrating anything.
   */
  static readonly layer = (
    file: string,
    options?: { readonly readOnly?: boolean }
  ): Layer.Layer<ResultsStore, ResultsStoreError | ResultsStoreLockedError> =>
    Layer.scoped(ResultsStore, Effect.flatMap(loadImplementation, (m) => m.make({ path: file, readOnly: options?.readOnly ?? false })))

  /** An empty in-memory store, gone when the layer is released. */
  static readonly layerMemory: Layer.Layer<ResultsStore, ResultsStoreError> = Layer.scoped(
    ResultsStore,
    Effect.flatMap(loadImplementation, (m) => m.make({ path: m.MEMORY, readOnly: false })).pipe(
      Effect.catchTag("ResultsStoreLockedError", (e) => Effect.die(e))
    )
  )
}
