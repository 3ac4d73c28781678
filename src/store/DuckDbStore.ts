/**
 * The results store's DuckDB implementation: the schema (DDL and migrations), conversions between
 * DuckDB values and plain JSON-friendly values, and `make`, which opens the database and builds the
 * ResultsStore service. Imported by ResultsStore.ts's layers only when a store is opened.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import {
  type DuckDBAppender,
  type DuckDBConnection,
  DuckDBInstance,
  type DuckDBResultReader,
  DuckDBTypeId,
  type DuckDBValue,
  type DuckDBValueConverter,
  type JS,
  JSDuckDBValueConverter,
  timestampValue
} from "@duckdb/node-api"
import { Clock, Duration, Effect, Option, Schedule } from "effect"
import type { CacheKey, RunId } from "../domain/Ids.js"
import type { ExampleRow, GenerationRow, MetricRow } from "../domain/Results.js"
import type { MetricColumn, ParamColumn } from "./Views.js"
import { metricColumnsSql, paramColumnsSql, summaryViewSql, SWEEP_DDL, trialResultsViewSql, trialsViewSql } from "./Views.js"

import type { NodeRecord, NodeStatus, QueryParams, QueryResult, RecordedRows, RecordNode, ResultsStoreService, RunStatus, StartRun, StartSweep, SweepStatus } from "./ResultsStore.js"
import { QueryError, ResultsStoreError, ResultsStoreLockedError } from "./ResultsStore.js"

/**
 * 2: per-example rows are stored once per cache key (`example_rows`), `examples` is a view.
 * 3: a language model's samples, once per cache key (`generation_rows`), and the `generations` view.
 * 4: runs and sweeps record their process (`pid`, `host`): with processes sharing a store, a run still
 *    `running` was left so by a killed process only when that process is gone.
 */
export const SCHEMA_VERSION = 4

const DDL: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    pipeline VARCHAR NOT NULL,
    pipeline_path VARCHAR NOT NULL,
    sweep_id VARCHAR,
    trial INTEGER,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    status VARCHAR NOT NULL,
    backend VARCHAR NOT NULL,
    error VARCHAR
  )`,
  `CREATE TABLE IF NOT EXISTS nodes (
    run_id VARCHAR NOT NULL,
    node_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    kind_version INTEGER NOT NULL,
    cache_key VARCHAR NOT NULL,
    params JSON,
    inputs JSON,
    status VARCHAR NOT NULL,
    duration_ms DOUBLE,
    info JSON,
    started_at TIMESTAMP
  )`,
  `CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR NOT NULL,
    node_id VARCHAR NOT NULL,
    cache_key VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    step INTEGER,
    value DOUBLE
  )`,
  // A node's per-example rows depend only on its result, so they are stored once per cache key: a
  // cached node in a later run adds no rows. The `examples` view gives them per run and node.
  `CREATE TABLE IF NOT EXISTS example_rows (
    cache_key VARCHAR NOT NULL,
    split VARCHAR NOT NULL,
    example_id INTEGER NOT NULL,
    label INTEGER NOT NULL,
    subject VARCHAR,
    prediction INTEGER,
    confidence DOUBLE,
    entropy DOUBLE,
    loss DOUBLE,
    decision VARCHAR,
    reason VARCHAR
  )`,
  // Samples, like example rows, depend only on the result: once per cache key, per run in the view.
  `CREATE TABLE IF NOT EXISTS generation_rows (
    cache_key VARCHAR NOT NULL,
    row_index INTEGER NOT NULL,
    prompt_id VARCHAR NOT NULL,
    sample INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    prompt VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    tokens INTEGER NOT NULL,
    mean_log_prob DOUBLE,
    finish_reason VARCHAR NOT NULL,
    teacher_nll DOUBLE
  )`,
  `ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid INTEGER`,
  `ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR`
]

/** Every run's per-example rows: each recorded node joined with the rows of its cache key. */
const EXAMPLES_VIEW = `CREATE OR REPLACE VIEW examples AS
  SELECT n.run_id, n.node_id, e.cache_key, e.split, e.example_id, e.label, e.subject, e.prediction,
         e.confidence, e.entropy, e.loss, e.decision, e.reason
  FROM nodes n JOIN example_rows e ON e.cache_key = n.cache_key
  WHERE n.status <> 'failed'`

/** Every run's samples: each recorded node joined with the rows of its cache key. */
const GENERATIONS_VIEW = `CREATE OR REPLACE VIEW generations AS
  SELECT n.run_id, n.node_id, g.cache_key, g.row_index, g.prompt_id, g.sample, g.seed, g.prompt, g.text,
         g.tokens, g.mean_log_prob, g.finish_reason, g.teacher_nll
  FROM nodes n JOIN generation_rows g ON g.cache_key = n.cache_key
  WHERE n.status <> 'failed'`

/**
 * Layout 1 kept a copy of the rows in an `examples` table for every run: keep one copy per cache key
 * (the first run's) and replace the table by the view.
 */
const MIGRATE_EXAMPLES: ReadonlyArray<string> = [
  `INSERT INTO example_rows
   SELECT cache_key, split, example_id, label, subject, prediction, confidence, entropy, loss, decision, reason
   FROM examples
   WHERE (run_id, node_id) IN (SELECT arg_min(run_id, run_id || node_id), arg_min(node_id, run_id || node_id) FROM examples GROUP BY cache_key)`,
  `DROP TABLE examples`
]

// ---------------------------------------------------------------------------------------------------
// Value conversion

const describeError = (e: unknown): string => (e instanceof Error ? e.message : String(e))

export const MEMORY = ":memory:"

/** JSON text of a value for a JSON column; bigints as strings, typed arrays summarised. */
const toJsonText = (value: unknown): string =>
  JSON.stringify(value ?? null, (_key, v) => {
    if (typeof v === "bigint") return v.toString()
    if (ArrayBuffer.isView(v)) return { typedArray: v.constructor.name, length: (v as { length?: number }).length }
    return v
  }) ?? "null"

const timestamp = (epochMillis: number) => timestampValue(BigInt(Math.round(epochMillis)) * 1000n)

/** A query parameter as a DuckDB value: Dates become timestamps, objects JSON text. */
const toDuckValue = (v: unknown): DuckDBValue => {
  if (v === null || v === undefined) return null
  switch (typeof v) {
    case "string":
    case "number":
    case "boolean":
    case "bigint":
      return v
  }
  if (v instanceof Date) return timestamp(v.getTime())
  return toJsonText(v)
}

const plainBigInt = (v: bigint): number | string =>
  v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** Converts via `convert`, or falls back to DuckDB's spelling (e.g. `infinity` timestamps have no Date). */
const orText = (value: DuckDBValue, convert: () => unknown): unknown => {
  try {
    return convert()
  } catch {
    return String(value)
  }
}

/**
 * DuckDB values as plain, JSON-friendly JS, recursively (lists, structs, maps): 64-bit and wider
 * integers as numbers when safe, decimal strings otherwise; timestamps ISO-8601 UTC; DATEs
 * `YYYY-MM-DD`; TIME and INTERVAL as DuckDB spells them; the rest as `getRowsJS` gives. JSON columns
 * are parsed by `readResult`: chunks do not carry the JSON alias, so nested JSON stays text.
 */
const plainConverter: DuckDBValueConverter<unknown> = (value, type, converter) => {
  if (value === null) return null
  switch (type.typeId) {
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
    case DuckDBTypeId.BIGNUM: {
      const big = JSDuckDBValueConverter(value, type, JSDuckDBValueConverter)
      return typeof big === "bigint" ? plainBigInt(big) : big
    }
    case DuckDBTypeId.DATE:
      return orText(value, () => (JSDuckDBValueConverter(value, type, JSDuckDBValueConverter) as Date).toISOString().slice(0, 10))
    case DuckDBTypeId.TIMESTAMP:
    case DuckDBTypeId.TIMESTAMP_S:
    case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_NS:
    case DuckDBTypeId.TIMESTAMP_TZ:
      return orText(value, () => (JSDuckDBValueConverter(value, type, JSDuckDBValueConverter) as Date).toISOString())
    case DuckDBTypeId.TIME:
    case DuckDBTypeId.TIME_TZ:
    case DuckDBTypeId.TIME_NS:
    case DuckDBTypeId.INTERVAL:
      return String(value)
  }
  return JSDuckDBValueConverter(value, type, converter as DuckDBValueConverter<JS>)
}

const readResult = (reader: DuckDBResultReader): QueryResult => {
  const types = reader.columnTypes()
  // Chunks carry no type aliases, so JSON columns are recognised here, on the result's own types.
  const jsonColumns = types.flatMap((t, c) => (t.alias === "JSON" ? [c] : []))
  const rows = reader.convertRows(plainConverter)
  if (jsonColumns.length > 0) {
    for (const row of rows) {
      for (const c of jsonColumns) if (typeof row[c] === "string") row[c] = parseJson(row[c] as string)
    }
  }
  return { columns: reader.columnNames(), types: types.map((t) => t.alias ?? t.toString()), rows }
}

// ---------------------------------------------------------------------------------------------------
// Opening

/**
 * How results.duckdb is shared by processes. DuckDB lets one process open a file read-write, or any
 * number of processes open it read-only, never both. So no process holds the file open between
 * operations: every write opens it read-write, writes in one transaction (a node's row with its metrics,
 * example rows and samples; a sweep with all its trials), and closes it; every read by a reading verb
 * opens it read-only for its query and closes it. A process that finds the file locked (DuckDB's "Could not set lock")
 * retries with a jittered exponential backoff (10 ms growing to 100 ms) for up to `lockTimeout`
 * (default 2 minutes), then fails with a `ResultsStoreLockedError` naming the holder's pid. A write
 * holds the file for about 0.1 s (open, one transaction, checkpoint on close), so runs and
 * sweeps on one store interleave their writes, and `query`, `show`, `report` and `export` read between
 * them; a reader never sees part of a transaction, and a killed writer's open transaction is rolled
 * back by DuckDB. Per-process segment files with views over them were the alternative: they free
 * writers from waiting, but every read would attach every segment, `verify --repair` and migrations
 * would have to visit each one, and a store would no longer be one file to copy; waits of a tenth of
 * a second do not justify that. In one process the operations on a file take turns (one semaphore per file),
 * since DuckDB's file lock does not separate two opens by one process.
 */
export const DEFAULT_LOCK_TIMEOUT: Duration.DurationInput = "2 minutes"

/** One per file, shared by every layer of this process on it. */
const fileSemaphores = new Map<string, Effect.Semaphore>()
const semaphoreOf = (file: string): Effect.Semaphore => {
  let semaphore = fileSemaphores.get(file)
  if (semaphore === undefined) {
    semaphore = Effect.unsafeMakeSemaphore(1)
    fileSemaphores.set(file, semaphore)
  }
  return semaphore
}

const isLockConflict = (cause: unknown): boolean => /Could not set lock on file/.test(describeError(cause))

const openError = (file: string, readOnly: boolean, cause: unknown): ResultsStoreError | ResultsStoreLockedError => {
  const text = describeError(cause)
  const name = path.basename(file)
  if (isLockConflict(cause)) {
    const pidText = /\(PID (\d+)\)/.exec(text)?.[1]
    const pid = pidText === undefined ? undefined : Number(pidText)
    return new ResultsStoreLockedError({
      path: file,
      pid,
      message: `${name} is in use by another distillery process${pid === undefined ? "" : ` (pid ${pid})`}; ` +
        `wait for it to finish, then try again (${file})`,
      cause
    })
  }
  if (readOnly && !fs.existsSync(file)) {
    return new ResultsStoreError({
      path: file,
      message: `no results store at ${file}: run a pipeline first, or give the store that holds it with --store <dir>`,
      cause
    })
  }
  return new ResultsStoreError({ path: file, message: `could not open results store ${file}: ${text}`, cause })
}

interface Options {
  readonly path: string
  readonly readOnly: boolean
  /** How long an operation waits for another process's lock on the file before failing. */
  readonly lockTimeout?: Duration.DurationInput | undefined
}

/** The connection with `run` on it, or a `ResultsStoreError` | `ResultsStoreLockedError` | `E`. */
type WithConnection = <A, E>(
  run: (c: DuckDBConnection) => Promise<A>,
  onError: (cause: unknown) => E
) => Effect.Effect<A, E | ResultsStoreError | ResultsStoreLockedError>

/**
 * Runs foreign code on `connection`. Interrupting it asks DuckDB to stop and waits for the statement to
 * settle, so that the connection is never closed (or reused) under a running statement.
 */
const runOn = <A, E>(connection: DuckDBConnection, run: (c: DuckDBConnection) => Promise<A>, onError: (cause: unknown) => E) =>
  Effect.async<A, E>((resume) => {
    const pending = Promise.resolve().then(() => run(connection))
    pending.then((a) => resume(Effect.succeed(a)), (cause) => resume(Effect.fail(onError(cause))))
    return Effect.sync(() => connection.interrupt()).pipe(
      Effect.zipRight(Effect.promise(() => pending.then(() => undefined, () => undefined)))
    )
  })

/** One connection for the life of the scope: the in-memory store, which cannot be reopened. */
const heldConnection = Effect.gen(function*() {
  const instance = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => DuckDBInstance.create(MEMORY),
      catch: (cause) => openError(MEMORY, false, cause)
    }),
    (db) => Effect.sync(() => db.closeSync())
  )
  const connection = yield* Effect.acquireRelease(
    Effect.tryPromise({ try: () => instance.connect(), catch: (cause) => openError(MEMORY, false, cause) }),
    (c) => Effect.sync(() => c.closeSync())
  )
  const semaphore = yield* Effect.makeSemaphore(1)
  const withConnection: WithConnection = (run, onError) => semaphore.withPermits(1)(runOn(connection, run, onError))
  return withConnection
})

/**
 * A connection per operation: the file opened (read-only when `readOnly`), `run`, closed. While another
 * process holds the file, the open is retried on a backoff for up to `lockTimeout`.
 */
const connectionPerOperation = (file: string, readOnly: boolean, lockTimeout: Duration.DurationInput): WithConnection => {
  const semaphore = semaphoreOf(file)
  const open = Effect.tryPromise({
    try: () => DuckDBInstance.create(file, readOnly ? { access_mode: "READ_ONLY" } : undefined),
    catch: (cause) => openError(file, readOnly, cause)
  })
  const close = (instance: DuckDBInstance) => Effect.sync(() => instance.closeSync())
  const retry = Schedule.exponential("10 millis", 1.5).pipe(
    Schedule.union(Schedule.spaced("100 millis")),
    Schedule.jittered,
    Schedule.upTo(lockTimeout)
  )
  const waited = Duration.format(Duration.decode(lockTimeout))
  return <A, E>(run: (c: DuckDBConnection) => Promise<A>, onError: (cause: unknown) => E) =>
    semaphore.withPermits(1)(
      Effect.acquireUseRelease(
        open,
        (instance) =>
          Effect.acquireUseRelease(
            Effect.tryPromise({ try: () => instance.connect(), catch: (cause) => openError(file, readOnly, cause) }),
            (connection) => runOn(connection, run, onError),
            (connection) => Effect.sync(() => connection.closeSync())
          ),
        close
      )
    ).pipe(
      Effect.retry({ schedule: retry, while: (e) => e instanceof ResultsStoreLockedError }),
      Effect.mapError((e) =>
        e instanceof ResultsStoreLockedError
          ? new ResultsStoreLockedError({
            path: e.path,
            pid: e.pid,
            message: `${path.basename(file)} stayed locked by another distillery process` +
              `${e.pid === undefined ? "" : ` (pid ${e.pid})`} for ${waited}; wait for it to finish (or stop it), then try again (${file})`,
            cause: e.cause
          })
          : e
      )
    )
}

export const make = (options: Options) =>
  Effect.gen(function*() {
    const isMemory = options.path === MEMORY
    const file = isMemory ? MEMORY : path.resolve(options.path)
    const readOnly = options.readOnly && !isMemory

    if (!isMemory && !readOnly) {
      yield* Effect.try({
        try: () => fs.mkdirSync(path.dirname(file), { recursive: true }),
        catch: (cause) =>
          new ResultsStoreError({ path: file, message: `could not create the directory of ${file}`, cause })
      })
    }
    const withConnection = isMemory
      ? yield* heldConnection
      : connectionPerOperation(file, readOnly, options.lockTimeout ?? DEFAULT_LOCK_TIMEOUT)

    /** `withConnection`, mapping a throw to a `ResultsStoreError` that says what was being done. */
    const use = <A>(doing: string, run: (c: DuckDBConnection) => Promise<A>) =>
      withConnection(run, (cause) =>
        new ResultsStoreError({ path: file, message: `could not ${doing} in ${file}: ${describeError(cause)}`, cause }))

    /** `use`, in one transaction: all of `run`'s writes, or (on a throw, or the process killed) none. */
    const transaction = <A>(doing: string, run: (c: DuckDBConnection) => Promise<A>) =>
      use(doing, async (c) => {
        await c.run("BEGIN TRANSACTION")
        try {
          const a = await run(c)
          await c.run("COMMIT")
          return a
        } catch (e) {
          await c.run("ROLLBACK").catch(() => undefined)
          throw e
        }
      })

    /** Reads the columns the dynamic views need, then (re)creates every view. */
    const refreshViewsWith = async (c: DuckDBConnection) => {
      const params = (await c.runAndReadAll(paramColumnsSql)).getRowsJS().map(
        ([param, type]) => ({ param: String(param), type: String(type) }) as ParamColumn
      )
      const metrics = (await c.runAndReadAll(metricColumnsSql)).getRowsJS().map(
        ([node, metric]): MetricColumn => ({ node: String(node), metric: String(metric) })
      )
      await c.run(trialResultsViewSql)
      await c.run(trialsViewSql(params, metrics))
      await c.run(summaryViewSql(params))
    }

    // Check the layout, and create or migrate it when it is not the current one, in one open of the
    // file and one transaction, so that of two processes opening a new store one creates it and the
    // other finds it made (a store already at the current layout opens without any DDL: one query).
    const version = yield* use("open the results store", async (c) => {
      const tables = await c.runAndReadAll(
        `SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'`
      )
      const found = Number(tables.getRowsJS()[0]![0]) === 0
        ? undefined
        : (await c.runAndReadAll(`SELECT max(version) FROM schema_version`)).getRowsJS()[0]![0]
      const v = found === null || found === undefined ? undefined : Number(found)
      if (readOnly || v === SCHEMA_VERSION || (v !== undefined && v > SCHEMA_VERSION)) return v
      await c.run("BEGIN TRANSACTION")
      try {
        for (const ddl of DDL) await c.run(ddl)
        const old = await c.runAndReadAll(`SELECT count(*) FROM information_schema.tables WHERE table_name = 'examples' AND table_type = 'BASE TABLE'`)
        if (Number(old.getRowsJS()[0]![0]) > 0) for (const sql of MIGRATE_EXAMPLES) await c.run(sql)
        await c.run(EXAMPLES_VIEW)
        await c.run(GENERATIONS_VIEW)
        for (const ddl of SWEEP_DDL) await c.run(ddl)
        await refreshViewsWith(c)
        await c.run(`INSERT INTO schema_version VALUES (${SCHEMA_VERSION})`)
        await c.run("COMMIT")
      } catch (e) {
        await c.run("ROLLBACK").catch(() => undefined)
        throw e
      }
      return SCHEMA_VERSION
    })
    if (version !== undefined && version > SCHEMA_VERSION) {
      return yield* new ResultsStoreError({
        path: file,
        message: `${file} has results-store layout ${version}, newer than this distillery's ${SCHEMA_VERSION}: ` +
          "upgrade distillery to read it"
      })
    }

    const startRun = Effect.fn("ResultsStore.startRun")(function*(run: StartRun) {
      const now = yield* Clock.currentTimeMillis
      yield* use(`start run ${run.runId}`, (c) =>
        c.run(
          `INSERT INTO runs (run_id, pipeline, pipeline_path, sweep_id, trial, started_at, ended_at, status, backend, error, pid, host)
           VALUES ($1, $2, $3, $4, $5, $6, NULL, 'running', $7, NULL, $8, $9)`,
          [
            run.runId,
            run.pipeline,
            run.pipelinePath,
            run.sweepId ?? null,
            run.trial ?? null,
            timestamp(now),
            run.backend,
            process.pid,
            os.hostname()
          ]
        ))
    })

    const finishRun = Effect.fn("ResultsStore.finishRun")(function*(
      runId: RunId,
      status: Exclude<RunStatus, "running">,
      error?: string
    ) {
      const now = yield* Clock.currentTimeMillis
      const changed = yield* use(`finish run ${runId}`, (c) =>
        c.run(`UPDATE runs SET ended_at = $1, status = $2, error = $3 WHERE run_id = $4`, [
          timestamp(now),
          status,
          error ?? null,
          runId
        ]).then((r) => r.rowsChanged))
      if (changed === 0) {
        return yield* new ResultsStoreError({
          path: file,
          message: `cannot finish run ${runId}: no such run was started in ${file}`
        })
      }
    })

    const insertNode = (c: DuckDBConnection, node: RecordNode, startedAt: number) =>
        c.run(
          `INSERT INTO nodes (run_id, node_id, kind, kind_version, cache_key, params, inputs, status, duration_ms, info, started_at, seed)
           VALUES ($1, $2, $3, $4, $5, $6::JSON, $7::JSON, $8, $9, $10::JSON, $11, $12)`,
          [
            node.runId,
            node.nodeId,
            node.kind,
            node.kindVersion,
            node.cacheKey,
            toJsonText(node.params),
            toJsonText(node.inputs),
            node.status,
            node.durationMs,
            toJsonText(node.info ?? {}),
            timestamp(startedAt),
            node.seed ?? null
          ]
        )

    const appendMetrics = (c: DuckDBConnection, runId: RunId, nodeId: string, cacheKey: CacheKey, rows: ReadonlyArray<MetricRow>) =>
      appendAll(c, "metrics", rows, (appender, row) => {
        appender.appendVarchar(runId)
        appender.appendVarchar(nodeId)
        appender.appendVarchar(cacheKey)
        appender.appendVarchar(row.name)
        if (row.step === undefined || row.step === null) appender.appendNull()
        else appender.appendInteger(checkInt("step", row.step))
        appender.appendDouble(row.value)
      })

    // Rows of a result already recorded (the node was a cache hit) are there once already.
    const appendExamples = async (c: DuckDBConnection, cacheKey: CacheKey, rows: ReadonlyArray<ExampleRow>) => {
      if (rows.length === 0) return
      const recorded = await c.runAndReadAll(`SELECT count(*) FROM example_rows WHERE cache_key = $1`, [cacheKey])
      if (Number(recorded.getRowsJS()[0]![0]) > 0) return
      await appendAll(c, "example_rows", rows, (appender, row) => {
        const optionalInt = (name: string, v: number | undefined) =>
          v === undefined || v === null ? appender.appendNull() : appender.appendInteger(checkInt(name, v))
        const optionalDouble = (v: number | undefined) =>
          v === undefined || v === null ? appender.appendNull() : appender.appendDouble(v)
        const optionalText = (v: string | undefined) =>
          v === undefined || v === null ? appender.appendNull() : appender.appendVarchar(v)
        appender.appendVarchar(cacheKey)
        appender.appendVarchar(row.split)
        appender.appendInteger(checkInt("exampleId", row.exampleId))
        appender.appendInteger(checkInt("label", row.label))
        optionalText(row.subject)
        optionalInt("prediction", row.prediction)
        optionalDouble(row.confidence)
        optionalDouble(row.entropy)
        optionalDouble(row.loss)
        optionalText(row.decision)
        optionalText(row.reason)
      })
    }

    const appendGenerations = async (c: DuckDBConnection, cacheKey: CacheKey, rows: ReadonlyArray<GenerationRow>) => {
      if (rows.length === 0) return
      const recorded = await c.runAndReadAll(`SELECT count(*) FROM generation_rows WHERE cache_key = $1`, [cacheKey])
      if (Number(recorded.getRowsJS()[0]![0]) > 0) return
      await appendAll(c, "generation_rows", rows, (appender, row) => {
        appender.appendVarchar(cacheKey)
        appender.appendInteger(checkInt("row", row.row))
        appender.appendVarchar(row.promptId)
        appender.appendInteger(checkInt("sample", row.sample))
        appender.appendInteger(checkInt("seed", row.seed))
        appender.appendVarchar(row.prompt)
        appender.appendVarchar(row.text)
        appender.appendInteger(checkInt("tokens", row.tokens))
        if (Number.isFinite(row.meanLogProb)) appender.appendDouble(row.meanLogProb)
        else appender.appendNull()
        appender.appendVarchar(row.finishReason)
        if (row.teacherNll === undefined || !Number.isFinite(row.teacherNll)) appender.appendNull()
        else appender.appendDouble(row.teacherNll)
      })
    }

    const recordNode = Effect.fn("ResultsStore.recordNode")(function*(node: RecordNode) {
      const now = yield* Clock.currentTimeMillis
      const startedAt = node.startedAt ?? now - node.durationMs
      yield* use(`record node ${node.nodeId} of run ${node.runId}`, (c) => insertNode(c, node, startedAt))
    })

    const recordResult = Effect.fn("ResultsStore.recordResult")(function*(node: RecordNode, result: RecordedRows) {
      const now = yield* Clock.currentTimeMillis
      const startedAt = node.startedAt ?? now - node.durationMs
      yield* transaction(`record node ${node.nodeId} of run ${node.runId}`, async (c) => {
        await insertNode(c, node, startedAt)
        if (result.metrics.length > 0) await appendMetrics(c, node.runId, node.nodeId, node.cacheKey, result.metrics)
        await appendExamples(c, node.cacheKey, result.examples)
        await appendGenerations(c, node.cacheKey, result.generations)
      })
    })

    const recordCachedNode = Effect.fn("ResultsStore.recordCachedNode")(function*(node: RecordNode) {
      const now = yield* Clock.currentTimeMillis
      const startedAt = node.startedAt ?? now - node.durationMs
      return yield* transaction(`record node ${node.nodeId} of run ${node.runId}`, async (c) => {
        const earlier = (await c.runAndReadAll(
          `SELECT run_id, node_id, CAST(info AS VARCHAR) FROM nodes WHERE cache_key = $1 AND status <> 'failed' ORDER BY started_at LIMIT 1`,
          [node.cacheKey]
        )).getRowsJS()[0]
        if (earlier === undefined) return false
        await insertNode(c, { ...node, info: parseJson(String(earlier[2] ?? "{}")) }, startedAt)
        await c.run(
          `INSERT INTO metrics SELECT $1, $2, cache_key, name, step, value FROM metrics WHERE run_id = $3 AND node_id = $4 AND cache_key = $5`,
          [node.runId, node.nodeId, String(earlier[0]), String(earlier[1]), node.cacheKey]
        )
        return true
      })
    })

    const recordMetrics = Effect.fn("ResultsStore.recordMetrics")(function*(
      runId: RunId,
      nodeId: string,
      cacheKey: CacheKey,
      rows: ReadonlyArray<MetricRow>
    ) {
      if (rows.length === 0) return
      yield* use(`record ${rows.length} metrics of node ${nodeId}`, (c) => appendMetrics(c, runId, nodeId, cacheKey, rows))
    })

    const recordExamples = Effect.fn("ResultsStore.recordExamples")(function*(cacheKey: CacheKey, rows: ReadonlyArray<ExampleRow>) {
      if (rows.length === 0) return
      yield* use(`record ${rows.length} example rows of result ${cacheKey.slice(0, 12)}`, (c) => appendExamples(c, cacheKey, rows))
    })

    const recordGenerations = Effect.fn("ResultsStore.recordGenerations")(function*(cacheKey: CacheKey, rows: ReadonlyArray<GenerationRow>) {
      if (rows.length === 0) return
      yield* use(`record ${rows.length} samples of result ${cacheKey.slice(0, 12)}`, (c) => appendGenerations(c, cacheKey, rows))
    })

    const query = Effect.fn("ResultsStore.query")(function*(sql: string, params?: QueryParams) {
      const values = params === undefined
        ? undefined
        : Array.isArray(params)
        ? params.map(toDuckValue)
        : Object.fromEntries(Object.entries(params).map(([k, v]) => [k, toDuckValue(v)]))
      return yield* withConnection(
        (c) => c.runAndReadAll(sql, values as Array<DuckDBValue> | Record<string, DuckDBValue>),
        (cause) => new QueryError({ sql, message: describeError(cause), cause })
      ).pipe(
        Effect.flatMap((reader) =>
          Effect.try({
            try: () => readResult(reader),
            catch: (cause) =>
              new QueryError({ sql, message: `could not convert the result: ${describeError(cause)}`, cause })
          })
        )
      )
    })

    const lastNodeRecord = Effect.fn("ResultsStore.lastNodeRecord")(function*(nodeId: string, pipeline: string) {
      const result = yield* query(
        `SELECT n.run_id, n.node_id, n.kind, n.kind_version, n.cache_key, n.params, n.inputs, n.status,
                n.duration_ms, n.info, n.started_at, n.seed
         FROM nodes n JOIN runs r ON r.run_id = n.run_id
         WHERE n.node_id = $1 AND r.pipeline = $2
         ORDER BY n.started_at DESC, r.started_at DESC, n.rowid DESC
         LIMIT 1`,
        [nodeId, pipeline]
      ).pipe(
        Effect.catchTag("QueryError", (e) => Effect.fail(new ResultsStoreError({ path: file, message: e.message, cause: e })))
      )
      const row = result.rows[0]
      if (row === undefined) return Option.none<NodeRecord>()
      const [runId, node, kind, kindVersion, cacheKey, params, inputs, status, durationMs, info, startedAt, seed] = row
      return Option.some<NodeRecord>({
        runId: runId as RunId,
        nodeId: node as string,
        kind: kind as string,
        kindVersion: kindVersion as number,
        cacheKey: cacheKey as CacheKey,
        params,
        inputs,
        status: status as NodeStatus,
        durationMs: durationMs as number,
        info,
        startedAt: startedAt as string,
        ...(typeof seed === "number" ? { seed } : {})
      })
    })

    /** The rows of a sweep: its `sweeps` row, one `sweep_trials` row per trial, one `trial_params` row per param. */
    const insertSweep = async (c: DuckDBConnection, sweep: StartSweep, now: number) => {
      await c.run(
        `INSERT INTO sweeps (sweep_id, pipeline, pipeline_path, started_at, ended_at, status, trials, params, baseline, pid, host)
         VALUES ($1, $2, $3, $4, NULL, 'running', $5, $6::JSON, $7, $8, $9)`,
        [
          sweep.sweepId,
          sweep.pipeline,
          sweep.pipelinePath,
          timestamp(now),
          sweep.trials.length,
          toJsonText(sweep.params),
          sweep.baseline ?? null,
          process.pid,
          os.hostname()
        ]
      )
      for (const t of sweep.trials) {
        await c.run(
          `INSERT INTO sweep_trials (sweep_id, trial, point, run_id, seed, params) VALUES ($1, $2, $3, $4, $5, $6::JSON)`,
          [sweep.sweepId, t.trial, t.point, t.runId, t.seed, toJsonText(Object.fromEntries(t.params))]
        )
        for (const [param, value] of t.params) {
          await c.run(
            `INSERT INTO trial_params (sweep_id, trial, run_id, seed, param, value) VALUES ($1, $2, $3, $4, $5, $6::JSON)`,
            [sweep.sweepId, t.trial, t.runId, t.seed, param, toJsonText(value)]
          )
        }
      }
    }

    const startSweep = Effect.fn("ResultsStore.startSweep")(function*(sweep: StartSweep) {
      const now = yield* Clock.currentTimeMillis
      // One transaction: a sweep is recorded with all its trials or not at all.
      yield* transaction(`start sweep ${sweep.sweepId}`, (c) => insertSweep(c, sweep, now))
    })

    const finishSweep = Effect.fn("ResultsStore.finishSweep")(function*(
      sweepId: string,
      status: Exclude<SweepStatus, "running">
    ) {
      const now = yield* Clock.currentTimeMillis
      yield* use(`finish sweep ${sweepId}`, (c) =>
        c.run(`UPDATE sweeps SET ended_at = $1, status = $2 WHERE sweep_id = $3`, [timestamp(now), status, sweepId]))
    })

    const refreshViews = Effect.fn("ResultsStore.refreshViews")(function*() {
      if (readOnly) return
      yield* use("regenerate the sweep views", refreshViewsWith)
    })

    const service: ResultsStoreService = {
      path: file,
      readOnly,
      startRun,
      finishRun,
      recordNode,
      recordResult,
      recordCachedNode,
      recordMetrics,
      recordExamples,
      recordGenerations,
      query,
      lastNodeRecord,
      startSweep,
      finishSweep,
      refreshViews
    }
    return service
  })

/** Appends every row to `table` in one batch: all of them, or (on a throw) none. */
const appendAll = async <R>(c: DuckDBConnection, table: string, rows: ReadonlyArray<R>, append: (appender: DuckDBAppender, row: R) => void) => {
  const appender = await c.createAppender(table)
  try {
    for (const row of rows) {
      append(appender, row)
      appender.endRow()
    }
    appender.flushSync()
  } catch (e) {
    appender.clear()
    throw e
  } finally {
    appender.closeSync()
  }
}

const checkInt = (name: string, v: number): number => {
  if (!Number.isInteger(v) || v < -2_147_483_648 || v > 2_147_483_647) {
    throw new Error(`${name} must be a 32-bit integer, got ${v}`)
  }
  return v
}

