/**
 * The read model of the results store: every question `show`, `ls`, `export`, `explain`, `gc`, `verify` and the
 * report ask of recorded results, each one function over the `ResultsStore` service, so that the SQL
 * reading results lives here (the `query` verb runs the user's own). Which run or sweep an id names is
 * decided once, by `resolveTarget`, for every verb.
 *
 * Rows come back as plain records; tables whose columns depend on the data (the `trials` view, the
 * `ls` listings, export) come back as a `QueryResult`. JSON columns are parsed, also where a store made
 * by hand typed them VARCHAR.
 */
import { hostname } from "node:os"
import { join } from "node:path"
import { Effect, Option, Schema } from "effect"
import { isProcessAlive } from "../cache/Claims.js"
import type { CacheKey, RunId } from "../domain/Ids.js"
import type { NodeRecord, NodeStatus, QueryResult, RunStatus } from "./ResultsStore.js"
import { ResultsStore } from "./ResultsStore.js"
import { sqlIdent, sqlString } from "./Views.js"

// ---------------------------------------------------------------------------------------------------
// Errors and models

/**
 * An id names no run or sweep, or a prefix names several; the message lists the ids to choose from.
 * The tag is the one every verb has always failed with (exit code 4).
 */
export class UnknownRunError extends Schema.TaggedError<UnknownRunError>()("UnknownRunError", {
  id: Schema.String,
  message: Schema.String
}) {}

export type Target = { readonly kind: "run" | "sweep"; readonly id: string }

/** A `runs` row. */
export interface RunRecord {
  readonly runId: RunId
  readonly pipeline: string
  readonly pipelinePath: string
  readonly status: RunStatus
  readonly backend: string
  /** ISO-8601 UTC. */
  readonly startedAt: string | null
  readonly endedAt: string | null
  readonly error: string | null
  readonly sweepId: string | null
  readonly trial: number | null
}

/** A `sweeps` row. */
export interface SweepRecord {
  readonly sweepId: string
  readonly pipeline: string
  readonly pipelinePath: string
  readonly status: string
  /** How many trials the sweep planned. */
  readonly trials: number | null
  /** The swept param paths, as declared. */
  readonly params: ReadonlyArray<string>
  /** The node whose metrics paired differences subtract. */
  readonly baseline: string | null
  readonly startedAt: string | null
  readonly endedAt: string | null
}

/** One trial of a sweep: its run (and that run's status) and its swept param values. */
export interface TrialRecord {
  readonly trial: number
  readonly runId: string | null
  readonly seed: number | null
  readonly status: string | null
  /** Swept param path -> value (as JSON parsed). */
  readonly params: Readonly<Record<string, unknown>>
}

/** A metric's value: final (`step IS NULL`) or, as a `StepValue`, at one step of a curve. */
export interface MetricValue {
  readonly runId: string
  readonly nodeId: string
  readonly name: string
  readonly value: number | null
}

export interface StepValue extends MetricValue {
  readonly step: number
}

/** Wrong examples of one (label, prediction) pair, with how many of them the teacher got right. */
export interface MistakeCell {
  readonly label: number
  readonly prediction: number
  readonly count: number
  /** How many of these the teacher got right (null: no teacher evaluation on the same examples). */
  readonly teacherRight: number | null
}

export interface Mistakes {
  readonly cells: ReadonlyArray<MistakeCell>
  /** The examples with a prediction, right or wrong. */
  readonly total: number
  /** The runs counted. */
  readonly runs: number
}

/** A `summary` row: one metric of one node at one param combination, over the seeds. */
export interface SummaryRow {
  readonly point: number
  /** Swept param path -> value at this point. */
  readonly params: Readonly<Record<string, unknown>>
  readonly nodeId: string
  readonly metric: string
  readonly n: number
  readonly mean: number | null
  readonly stddev: number | null
  /** Half-width of the 95% interval: t_{0.975}(n - 1) · stddev / √n. */
  readonly ci95: number | null
  readonly baseline: string | null
  readonly diffN: number | null
  readonly diffMean: number | null
  readonly diffStddev: number | null
  readonly diffCi95: number | null
}

export type FileFormat = "parquet" | "csv"

export interface WrittenTable {
  readonly table: string
  readonly path: string
  readonly rows: number
}

// ---------------------------------------------------------------------------------------------------
// Reading values

const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v))
const textOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))
const num = (v: unknown): number | null => (typeof v === "number" ? v : v === null || v === undefined ? null : Number(v))

/** The rows as objects by column name. */
const objects = (r: QueryResult): Array<Record<string, unknown>> =>
  r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])))

/**
 * A column meant to hold JSON: the store parses JSON-typed columns already; one typed VARCHAR (a table
 * made by hand) is parsed here, so a JSON string such as "4" is not parsed twice into a number.
 */
const jsonColumn = (r: QueryResult, name: string) => (v: unknown): unknown => {
  if (typeof v !== "string" || r.types[r.columns.indexOf(name)] === "JSON") return v
  try {
    return JSON.parse(v)
  } catch {
    return v
  }
}

/** A list of strings as one query parameter: `x IN (SELECT unnest(from_json($n::JSON, '["VARCHAR"]')))`. */
const inList = (n: number) => `(SELECT unnest(from_json($${n}::JSON, '["VARCHAR"]')))`

const query = (sql: string, params?: ReadonlyArray<unknown>) =>
  Effect.flatMap(ResultsStore, (store) => store.query(sql, params))

/** Whether the store has a table (a store written before sweeps existed, opened read-only, has no sweeps). */
const hasTable = (name: string) =>
  query("SELECT count(*) FROM information_schema.tables WHERE table_name = $1", [name]).pipe(
    Effect.map((r) => Number(r.rows[0]?.[0] ?? 0) > 0)
  )

/** Whether a table has a column (layouts before 4 record no process for runs and sweeps). */
const hasColumn = (table: string, column: string) =>
  query("SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2", [table, column]).pipe(
    Effect.map((r) => Number(r.rows[0]?.[0] ?? 0) > 0)
  )

/**
 * Whether the process that recorded a row (`pid` on `host`) is gone: no pid recorded (older
 * distillery held the store open while it ran), or a pid of this host that is dead. A process on
 * another host cannot be checked: it counts as running.
 */
const isGone = (pid: unknown, host: unknown): boolean =>
  pid === null || pid === undefined || (host === hostname() && !isProcessAlive(Number(pid)))

// ---------------------------------------------------------------------------------------------------
// Targets

/** Every id a target can name: sweeps and runs, `listed` for those `ls` lists (sweeps, stand-alone runs). */
const idsSql = (sweeps: boolean) =>
  `(${sweeps ? "SELECT 'sweep' AS kind, sweep_id AS id, started_at, true AS listed FROM sweeps UNION ALL " : ""}` +
  "SELECT 'run' AS kind, run_id AS id, started_at, sweep_id IS NULL AS listed FROM runs)"

const targetOf = (row: ReadonlyArray<unknown>): Target => ({ kind: row[0] === "sweep" ? "sweep" : "run", id: text(row[1]) })

/**
 * Which run or sweep `id` names, for every verb: `last` is the newest sweep or stand-alone run; else an
 * exact sweep or run id (a sweep first, should both have it); else the one sweep or run whose id starts
 * with `id`. Fails naming the matches when several start with it, or the recent ids when none does.
 */
export const resolveTarget = Effect.fn("ReadModel.resolveTarget")(function*(id: string) {
  const ids = idsSql(yield* hasTable("sweeps"))
  if (id === "last") {
    const newest = yield* query(`SELECT kind, id FROM ${ids} WHERE listed ORDER BY started_at DESC, id DESC LIMIT 1`)
    const row = newest.rows[0]
    if (row === undefined) return yield* new UnknownRunError({ id, message: "no runs yet: run a pipeline first" })
    return targetOf(row)
  }
  const matches = yield* query(
    `SELECT kind, id FROM ${ids} WHERE starts_with(id, $1) ORDER BY id = $1 DESC, kind = 'sweep' DESC, started_at DESC, id DESC`,
    [id]
  )
  const first = matches.rows[0]
  if (first !== undefined && (first[1] === id || matches.rows.length === 1)) return targetOf(first)
  if (matches.rows.length > 1) {
    const shown = matches.rows.slice(0, 10).map((r) => text(r[1]))
    return yield* new UnknownRunError({
      id,
      message: `'${id}' matches ${matches.rows.length} runs and sweeps: ${shown.join(", ")}${matches.rows.length > 10 ? ", ..." : ""}; give more of it`
    })
  }
  const recent = yield* query(
    `SELECT kind, id FROM (
       SELECT kind, id, row_number() OVER (PARTITION BY kind ORDER BY started_at DESC, id DESC) AS k FROM ${ids} WHERE listed)
     WHERE k <= 5 ORDER BY kind, k`
  )
  const recentOf = (kind: string) => recent.rows.filter((r) => r[0] === kind).map((r) => text(r[1]))
  const sweeps = recentOf("sweep")
  return yield* new UnknownRunError({
    id,
    message: `no run or sweep '${id}'; recent runs: ${recentOf("run").join(", ") || "none"}` +
      (sweeps.length > 0 ? `; recent sweeps: ${sweeps.join(", ")}` : "") + " (`distillery ls` lists them all)"
  })
})

// ---------------------------------------------------------------------------------------------------
// Runs

const RUN_COLUMNS = "run_id, pipeline, pipeline_path, status, backend, started_at, ended_at, error, sweep_id, trial"

const runRecords = (r: QueryResult): Array<RunRecord> =>
  objects(r).map((o) => ({
    runId: text(o.run_id) as RunId,
    pipeline: text(o.pipeline),
    pipelinePath: text(o.pipeline_path),
    status: text(o.status) as RunStatus,
    backend: text(o.backend),
    startedAt: textOrNull(o.started_at),
    endedAt: textOrNull(o.ended_at),
    error: textOrNull(o.error),
    sweepId: textOrNull(o.sweep_id),
    trial: num(o.trial)
  }))

/** One run's `runs` row. */
export const run = Effect.fn("ReadModel.run")(function*(runId: string) {
  const r = yield* query(`SELECT ${RUN_COLUMNS} FROM runs WHERE run_id = $1`, [runId])
  return Option.fromNullable(runRecords(r)[0])
})

/** Runs whose status is still `running` though their process is gone: left so by a process that was killed. */
export const runsLeftRunning = Effect.fn("ReadModel.runsLeftRunning")(function*() {
  const tracked = yield* hasColumn("runs", "pid")
  const r = yield* query(
    `SELECT ${RUN_COLUMNS}${tracked ? ", pid, host" : ""} FROM runs WHERE status = 'running' ORDER BY started_at, run_id`
  )
  const gone = new Set(r.rows.filter((row) => !tracked || isGone(row[10], row[11])).map((row) => text(row[0])))
  return runRecords(r).filter((run) => gone.has(run.runId))
})

/** Sweeps still `running` though their process is gone; none when the store has no sweeps table. */
export const sweepsLeftRunning = Effect.fn("ReadModel.sweepsLeftRunning")(function*() {
  if (!(yield* hasTable("sweeps"))) return [] as ReadonlyArray<string>
  const tracked = yield* hasColumn("sweeps", "pid")
  const r = yield* query(`SELECT sweep_id${tracked ? ", pid, host" : ""} FROM sweeps WHERE status = 'running' ORDER BY started_at, sweep_id`)
  return r.rows.filter((row) => !tracked || isGone(row[1], row[2])).map((row) => text(row[0])) as ReadonlyArray<string>
})

/** The runs of a sweep's trials, by trial. */
export const sweepRuns = Effect.fn("ReadModel.sweepRuns")(function*(sweepId: string) {
  return runRecords(yield* query(`SELECT ${RUN_COLUMNS} FROM runs WHERE sweep_id = $1 ORDER BY trial, started_at`, [sweepId]))
})

const limitOf = (limit: number) => Math.max(1, Math.floor(limit))

/** `ls`: the newest runs (stand-alone ones unless `all`) with their node counts. */
export const listRuns = Effect.fn("ReadModel.listRuns")(function*(options: { readonly limit: number; readonly all: boolean }) {
  return yield* query(`
  SELECT r.run_id, r.pipeline, r.status, r.backend,
         strftime(r.started_at, '%Y-%m-%d %H:%M:%S') AS started,
         round(epoch(r.ended_at) - epoch(r.started_at), 1) AS seconds,
         count(n.node_id) AS nodes,
         count(n.node_id) FILTER (WHERE n.status = 'executed') AS executed,
         count(n.node_id) FILTER (WHERE n.status = 'cached') AS cached,
         count(n.node_id) FILTER (WHERE n.status = 'failed') AS failed
  FROM runs r LEFT JOIN nodes n USING (run_id)
  ${options.all ? "" : "WHERE r.sweep_id IS NULL"}
  GROUP BY ALL ORDER BY started DESC, r.run_id DESC LIMIT ${limitOf(options.limit)}`)
})

/** `ls`: the newest sweeps with their trial counts; none when the store has no sweeps table. */
export const listSweeps = Effect.fn("ReadModel.listSweeps")(function*(limit: number) {
  if (!(yield* hasTable("sweeps"))) return Option.none<QueryResult>()
  return Option.some(yield* query(`
  SELECT s.sweep_id, s.pipeline, s.status, s.trials,
         count(r.run_id) FILTER (WHERE r.status = 'succeeded') AS succeeded,
         count(r.run_id) FILTER (WHERE r.status = 'failed') AS failed,
         strftime(s.started_at, '%Y-%m-%d %H:%M:%S') AS started,
         round(epoch(s.ended_at) - epoch(s.started_at), 1) AS seconds
  FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.sweep_id
  GROUP BY ALL ORDER BY started DESC, s.sweep_id DESC LIMIT ${limitOf(limit)}`))
})

// ---------------------------------------------------------------------------------------------------
// Nodes

/** The `nodes` rows of some runs, in the order they started. */
export const nodes = Effect.fn("ReadModel.nodes")(function*(runIds: ReadonlyArray<string>) {
  const r = yield* query(
    `SELECT run_id, node_id, kind, kind_version, cache_key, params, inputs, status, duration_ms, info, started_at
     FROM nodes WHERE run_id IN ${inList(1)} ORDER BY started_at, rowid`,
    [runIds]
  )
  const params = jsonColumn(r, "params")
  const inputs = jsonColumn(r, "inputs")
  const info = jsonColumn(r, "info")
  return objects(r).map((o): NodeRecord => ({
    runId: text(o.run_id) as RunId,
    nodeId: text(o.node_id),
    kind: text(o.kind),
    kindVersion: num(o.kind_version) ?? 0,
    cacheKey: text(o.cache_key) as CacheKey,
    params: params(o.params),
    inputs: inputs(o.inputs),
    status: text(o.status) as NodeStatus,
    durationMs: num(o.duration_ms) ?? Number.NaN,
    info: info(o.info),
    startedAt: text(o.started_at)
  }))
})

/** How many of a run's nodes executed, were cached, failed. */
export const nodeStatusCounts = Effect.fn("ReadModel.nodeStatusCounts")(function*(runId: string) {
  const r = yield* query("SELECT status, count(*) FROM nodes WHERE run_id = $1 GROUP BY status", [runId])
  return Object.fromEntries(r.rows.map((row) => [text(row[0]), num(row[1]) ?? 0])) as Readonly<Partial<Record<NodeStatus, number>>>
})

/** Every cache key some recorded node names (what `gc` keeps). */
export const referencedCacheKeys = Effect.fn("ReadModel.referencedCacheKeys")(function*() {
  const r = yield* query("SELECT DISTINCT cache_key FROM nodes")
  return new Set(r.rows.map((row) => text(row[0]))) as ReadonlySet<string>
})

/** A cache key that recorded results name, with the runs that name it (what `verify` checks). */
export interface RecordedResult {
  readonly cacheKey: CacheKey
  readonly nodeId: string
  readonly kind: string
  /** The runs whose `nodes` rows name the key as executed or cached, oldest first. */
  readonly runIds: ReadonlyArray<string>
}

/** Every cache key that some run executed or took from the cache, by key, with its node and runs. */
export const recordedResults = Effect.fn("ReadModel.recordedResults")(function*() {
  const r = yield* query(
    `SELECT cache_key, min(node_id) AS node_id, min(kind) AS kind, to_json(list(DISTINCT run_id ORDER BY run_id)) AS runs
     FROM nodes WHERE status IN ('executed', 'cached') GROUP BY cache_key ORDER BY node_id, cache_key`
  )
  const runs = jsonColumn(r, "runs")
  return objects(r).map((o): RecordedResult => {
    const ids = runs(o.runs)
    return {
      cacheKey: text(o.cache_key) as CacheKey,
      nodeId: text(o.node_id),
      kind: text(o.kind),
      runIds: Array.isArray(ids) ? ids.map(text) : []
    }
  })
})

// ---------------------------------------------------------------------------------------------------
// Metrics and examples

/** The final metrics (`step IS NULL`) of some runs, as recorded. */
export const finalMetrics = Effect.fn("ReadModel.finalMetrics")(function*(runIds: ReadonlyArray<string>) {
  const r = yield* query(
    `SELECT run_id, node_id, name, value FROM metrics WHERE run_id IN ${inList(1)} AND step IS NULL ORDER BY rowid`,
    [runIds]
  )
  return objects(r).map((o): MetricValue => ({ runId: text(o.run_id), nodeId: text(o.node_id), name: text(o.name), value: num(o.value) }))
})

/** The per-step values of the metrics `names` of some runs, by node, metric and step. */
export const curves = Effect.fn("ReadModel.curves")(function*(runIds: ReadonlyArray<string>, names: ReadonlyArray<string>) {
  const r = yield* query(
    `SELECT run_id, node_id, name, step, value FROM metrics
     WHERE run_id IN ${inList(1)} AND step IS NOT NULL AND name IN ${inList(2)}
     ORDER BY node_id, name, step`,
    [runIds, names]
  )
  return objects(r).map((o): StepValue => ({
    runId: text(o.run_id),
    nodeId: text(o.node_id),
    name: text(o.name),
    step: num(o.step) ?? 0,
    value: num(o.value)
  }))
})

/**
 * The examples evaluate node `node` got wrong in some runs, counted by (label, prediction), with how
 * many of them `teacherNode` (an evaluate node of the same runs) got right on the same example.
 * `oneRun` counts the first run's examples only: a node no trial changed made the same mistakes in each.
 */
export const mistakes = Effect.fn("ReadModel.mistakes")(function*(
  runIds: ReadonlyArray<string>,
  node: string,
  teacherNode: string | null,
  options: { readonly oneRun: boolean }
) {
  const oneRun = (flag: number) => `(NOT $${flag} OR e.run_id = (SELECT min(run_id) FROM examples
    WHERE run_id IN ${inList(1)} AND node_id = $2 AND prediction IS NOT NULL))`
  const counts = yield* query(
    `SELECT e.label, e.prediction, count(*) AS n,
            count(t.example_id) AS teacher_seen,
            count(t.example_id) FILTER (WHERE t.prediction = t.label) AS teacher_right
     FROM examples e
     LEFT JOIN examples t
       ON t.run_id = e.run_id AND t.node_id = $3 AND t.split = e.split AND t.example_id = e.example_id
     WHERE e.run_id IN ${inList(1)} AND e.node_id = $2 AND e.prediction IS NOT NULL AND e.prediction <> e.label
       AND ${oneRun(4)}
     GROUP BY e.label, e.prediction ORDER BY e.label, e.prediction`,
    [runIds, node, teacherNode ?? "", options.oneRun]
  )
  const totals = yield* query(
    `SELECT count(*) AS total, count(DISTINCT run_id) AS runs FROM examples e
     WHERE run_id IN ${inList(1)} AND node_id = $2 AND prediction IS NOT NULL AND ${oneRun(3)}`,
    [runIds, node, options.oneRun]
  )
  const cells = objects(counts).map((o): MistakeCell => ({
    label: num(o.label) ?? 0,
    prediction: num(o.prediction) ?? 0,
    count: num(o.n) ?? 0,
    teacherRight: (num(o.teacher_seen) ?? 0) > 0 ? num(o.teacher_right) : null
  }))
  return { cells, total: num(totals.rows[0]?.[0]) ?? 0, runs: num(totals.rows[0]?.[1]) ?? 1 } satisfies Mistakes
})

// ---------------------------------------------------------------------------------------------------
// Sweeps

/** One sweep's `sweeps` row. */
export const sweep = Effect.fn("ReadModel.sweep")(function*(sweepId: string) {
  const r = yield* query(
    `SELECT sweep_id, pipeline, pipeline_path, status, trials, baseline, started_at, ended_at, params FROM sweeps WHERE sweep_id = $1`,
    [sweepId]
  )
  const params = jsonColumn(r, "params")
  return Option.fromNullable(objects(r).map((o): SweepRecord => {
    const declared = params(o.params)
    return {
      sweepId: text(o.sweep_id),
      pipeline: text(o.pipeline),
      pipelinePath: text(o.pipeline_path),
      status: text(o.status),
      trials: num(o.trials),
      params: Array.isArray(declared) ? declared.map(text) : [],
      baseline: o.baseline === "" ? null : textOrNull(o.baseline),
      startedAt: textOrNull(o.started_at),
      endedAt: textOrNull(o.ended_at)
    }
  })[0])
})

/**
 * A sweep's trials by number, the params from `trial_params` and the run (and its status) from either
 * table; with the swept params in the order first seen.
 */
export const trials = Effect.fn("ReadModel.trials")(function*(sweepId: string) {
  const tp = yield* query("SELECT trial, run_id, seed, param, value FROM trial_params WHERE sweep_id = $1 ORDER BY trial", [sweepId])
  const runs = yield* sweepRuns(sweepId)
  const byNumber = new Map<number, { trial: number; runId: string | null; seed: number | null; params: Record<string, unknown> }>()
  const trialOf = (n: number) => {
    let t = byNumber.get(n)
    if (t === undefined) {
      t = { trial: n, runId: null, seed: null, params: {} }
      byNumber.set(n, t)
    }
    return t
  }
  const params: Array<string> = []
  const valueOf = jsonColumn(tp, "value")
  for (const o of objects(tp)) {
    const t = trialOf(num(o.trial) ?? 0)
    if (o.run_id !== null) t.runId = text(o.run_id)
    if (o.seed !== null) t.seed = num(o.seed)
    const param = text(o.param)
    if (param !== "") {
      t.params[param] = valueOf(o.value)
      if (!params.includes(param)) params.push(param)
    }
  }
  const runStatus = new Map<string, string>()
  for (const r of runs) {
    runStatus.set(r.runId, r.status)
    if (r.trial !== null) {
      const t = trialOf(r.trial)
      if (t.runId === null) t.runId = r.runId
    }
  }
  const records: ReadonlyArray<TrialRecord> = [...byNumber.values()]
    .sort((a, b) => a.trial - b.trial)
    .map((t) => ({ ...t, status: t.runId === null ? null : runStatus.get(t.runId) ?? null }))
  return { trials: records, params: params as ReadonlyArray<string> }
})

/** The `trials` view for one sweep: a column per swept param and per `<node>.<metric>` of every sweep. */
export const trialsTable = Effect.fn("ReadModel.trialsTable")(function*(sweepId: string) {
  return yield* query("SELECT * FROM trials WHERE sweep_id = $1 ORDER BY trial", [sweepId])
})

const SUMMARY_COLUMNS = new Set([
  "sweep_id", "point", "node_id", "metric", "n", "mean", "stddev", "ci95", "baseline", "diff_n", "diff_mean", "diff_stddev", "diff_ci95"
])

/** The `summary` view for one sweep (of one metric, when given), by point, node and metric. */
export const summary = Effect.fn("ReadModel.summary")(function*(sweepId: string, metric?: string) {
  const r = yield* query(
    `SELECT * FROM summary WHERE sweep_id = $1 ${metric === undefined ? "" : "AND metric = $2"} ORDER BY point, node_id, metric`,
    metric === undefined ? [sweepId] : [sweepId, metric]
  )
  // The view has a column per param of every sweep: this sweep's are those with values.
  const paramColumns = r.columns.filter((c) => !SUMMARY_COLUMNS.has(c))
  return objects(r).map((o): SummaryRow => ({
    point: num(o.point) ?? 0,
    params: Object.fromEntries(paramColumns.flatMap((c) => (o[c] === null ? [] : [[c, o[c]]]))),
    nodeId: text(o.node_id),
    metric: text(o.metric),
    n: num(o.n) ?? 0,
    mean: num(o.mean),
    stddev: num(o.stddev),
    ci95: num(o.ci95),
    baseline: textOrNull(o.baseline),
    diffN: num(o.diff_n),
    diffMean: num(o.diff_mean),
    diffStddev: num(o.diff_stddev),
    diffCi95: num(o.diff_ci95)
  }))
})

// ---------------------------------------------------------------------------------------------------
// Export

/** The tables of a sweep or a run, each as one SELECT filtered to it. */
const tablesOf = (target: Target): ReadonlyArray<readonly [string, string]> =>
  target.kind === "sweep"
    ? [
        ["trials", `SELECT * FROM trials WHERE sweep_id = ${sqlString(target.id)} ORDER BY trial`],
        ["summary", `SELECT * FROM summary WHERE sweep_id = ${sqlString(target.id)} ORDER BY point, node_id, metric`],
        ["trial_results", `SELECT * FROM trial_results WHERE sweep_id = ${sqlString(target.id)} ORDER BY trial, node_id, metric`]
      ]
    : [
        ["nodes", `SELECT * FROM nodes WHERE run_id = ${sqlString(target.id)} ORDER BY started_at`],
        ["metrics", `SELECT * FROM metrics WHERE run_id = ${sqlString(target.id)} ORDER BY node_id, name, step`],
        ["examples", `SELECT * FROM examples WHERE run_id = ${sqlString(target.id)} ORDER BY node_id, split, example_id`]
      ]

/**
 * Writes a sweep's `trials`, `summary` and `trial_results`, or a run's `nodes`, `metrics` and
 * `examples`, as `<dir>/<table>.<format>` with DuckDB's `COPY ... TO`.
 */
export const writeTables = Effect.fn("ReadModel.writeTables")(function*(target: Target, dir: string, format: FileFormat) {
  const written: Array<WrittenTable> = []
  for (const [table, select] of tablesOf(target)) {
    // The sweep views have a column per param and metric of every sweep: keep this one's.
    const probe = yield* query(`SELECT * FROM (${select}) LIMIT 0`)
    const counts = probe.columns.length === 0
      ? []
      : (yield* query(`SELECT ${probe.columns.map((c) => `count(${sqlIdent(c)})`).join(", ")}, count(*) FROM (${select})`)).rows[0]!
    const total = Number(counts[counts.length - 1] ?? 0)
    const columns = probe.columns.filter((_, i) => total === 0 || Number(counts[i]) > 0)
    const path = join(dir, `${table}.${format}`)
    const options = format === "parquet" ? "(FORMAT parquet)" : "(FORMAT csv, HEADER true)"
    yield* query(`COPY (SELECT ${columns.map(sqlIdent).join(", ")} FROM (${select})) TO ${sqlString(path)} ${options}`)
    written.push({ table, path, rows: total })
  }
  return written as ReadonlyArray<WrittenTable>
})
