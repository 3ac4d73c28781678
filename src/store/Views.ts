/**
 * The SQL of the sweep tables and views in the results store, as pure functions of the columns they
 * need (ResultsStore runs them). Tables:
 * - `sweeps`        one row per sweep: pipeline, status, trial count, swept paths (JSON), baseline: the
 *                   node whose metrics paired differences subtract (the `baseline:` node, or the one
 *                   node that evaluates it)
 * - `sweep_trials`  one row per trial: its point (param combination), run id, seed, params as JSON
 * - `trial_params`  one row per trial and swept param: (sweep_id, trial, run_id, seed, param, value JSON)
 * Views:
 * - `trial_results` final metrics (step IS NULL) of each trial's run, long form
 * - `trials`        one row per trial, each swept param and each `<node>.<metric>` as its own column
 * - `summary`       per sweep, param combination, node and metric: n, mean, stddev and the 95% CI
 *                   half-width over the seeds, and the same for the paired difference against the
 *                   baseline node of the same trial (t quantiles from StudentT.ts, as the report's)
 * `trials` and `summary` name a column per param and metric found in the store, so they are
 * regenerated (CREATE OR REPLACE) whenever a sweep starts or ends, as the union over all sweeps.
 */
import { EXACT_DF, exact975, SERIES_975 } from "./StudentT.js"

export const SWEEP_DDL: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id VARCHAR PRIMARY KEY,
    pipeline VARCHAR NOT NULL,
    pipeline_path VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    status VARCHAR NOT NULL,
    trials INTEGER NOT NULL,
    params JSON,
    baseline VARCHAR
  )`,
  `CREATE TABLE IF NOT EXISTS sweep_trials (
    sweep_id VARCHAR NOT NULL,
    trial INTEGER NOT NULL,
    point INTEGER NOT NULL,
    run_id VARCHAR NOT NULL,
    seed INTEGER,
    params JSON
  )`,
  `CREATE TABLE IF NOT EXISTS trial_params (
    sweep_id VARCHAR NOT NULL,
    trial INTEGER NOT NULL,
    run_id VARCHAR NOT NULL,
    seed INTEGER,
    param VARCHAR NOT NULL,
    value JSON
  )`,
  // Added after the first layout: the seed is part of a node's cache key, and `explain` diffs it.
  `ALTER TABLE nodes ADD COLUMN IF NOT EXISTS seed INTEGER`,
  // Layout 4: the process that runs the sweep, so that `verify` tells a sweep running from one left running.
  `ALTER TABLE sweeps ADD COLUMN IF NOT EXISTS pid INTEGER`,
  `ALTER TABLE sweeps ADD COLUMN IF NOT EXISTS host VARCHAR`
]

/** A SQL string literal. */
export const sqlString = (s: string): string => `'${s.replace(/'/g, "''")}'`

/** A quoted SQL identifier (column names such as "student_kd.params.objective.temperature"). */
export const sqlIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`

/** What the values of one swept param are, across every sweep in the store: decides its column type. */
export interface ParamColumn {
  readonly param: string
  readonly type: "BIGINT" | "DOUBLE" | "VARCHAR" | "BOOLEAN" | "JSON"
}

export interface MetricColumn {
  readonly node: string
  readonly metric: string
}

/** Which params were swept, with the SQL type all their values share (first seen first). */
export const paramColumnsSql = `
  SELECT param,
         CASE
           WHEN bool_and(json_type(value) IN ('BIGINT', 'UBIGINT')) THEN 'BIGINT'
           WHEN bool_and(json_type(value) IN ('BIGINT', 'UBIGINT', 'DOUBLE')) THEN 'DOUBLE'
           WHEN bool_and(json_type(value) = 'VARCHAR') THEN 'VARCHAR'
           WHEN bool_and(json_type(value) = 'BOOLEAN') THEN 'BOOLEAN'
           ELSE 'JSON'
         END AS type
  FROM trial_params GROUP BY param ORDER BY min(rowid)`

/** Which (node, metric) pairs have final values in some trial. */
export const metricColumnsSql = `
  SELECT DISTINCT m.node_id, m.name
  FROM metrics m JOIN sweep_trials t ON t.run_id = m.run_id
  WHERE m.step IS NULL ORDER BY m.node_id, m.name`

const valueAs = (column: ParamColumn): string => {
  switch (column.type) {
    case "BIGINT":
    case "DOUBLE":
    case "BOOLEAN":
      // TRY_CAST: DuckDB may evaluate the expression on other params' rows before the FILTER drops them.
      return `TRY_CAST(value AS ${column.type})`
    case "VARCHAR":
      return `value->>'$'`
    case "JSON":
      return "value"
  }
}

/** `first(<typed value>) FILTER (WHERE param = ...) AS "<param>"` for each param. */
const paramPivot = (params: ReadonlyArray<ParamColumn>, prefix = ""): ReadonlyArray<string> =>
  params.map((p) => `first(${valueAs(p).replace(/\bvalue\b/, `${prefix}value`)}) FILTER (WHERE ${prefix}param = ${sqlString(p.param)}) AS ${sqlIdent(p.param)}`)

export const trialResultsViewSql = `
  CREATE OR REPLACE VIEW trial_results AS
  SELECT t.sweep_id, t.trial, t.run_id, t.seed, m.node_id, m.name AS metric, m.value
  FROM sweep_trials t JOIN metrics m ON m.run_id = t.run_id
  WHERE m.step IS NULL`

/** The `trials` view: one row per trial, a column per swept param and per `<node>.<metric>`. */
export const trialsViewSql = (params: ReadonlyArray<ParamColumn>, metrics: ReadonlyArray<MetricColumn>): string => {
  const names = new Set(["sweep_id", "trial", "point", "run_id", "seed", "status", ...params.map((p) => p.param)])
  const metricCols = metrics
    .map((m) => ({ ...m, column: `${m.node}.${m.metric}` }))
    .filter((m) => !names.has(m.column))
  const p = paramPivot(params)
  const m = metricCols.map(
    (c) => `first(value) FILTER (WHERE node_id = ${sqlString(c.node)} AND name = ${sqlString(c.metric)}) AS ${sqlIdent(c.column)}`
  )
  return `
  CREATE OR REPLACE VIEW trials AS
  WITH p AS (
    SELECT sweep_id, trial${p.map((x) => `,\n      ${x}`).join("")}
    FROM trial_params GROUP BY sweep_id, trial
  ),
  m AS (
    SELECT run_id${m.map((x) => `,\n      ${x}`).join("")}
    FROM metrics WHERE step IS NULL AND run_id IN (SELECT run_id FROM sweep_trials) GROUP BY run_id
  )
  SELECT t.sweep_id, t.trial, t.point, t.run_id, t.seed, coalesce(r.status, 'pending') AS status${params
    .map((x) => `, p.${sqlIdent(x.param)}`)
    .join("")}${metricCols.map((c) => `, m.${sqlIdent(c.column)}`).join("")}
  FROM sweep_trials t
  LEFT JOIN runs r ON r.run_id = t.run_id
  LEFT JOIN p ON p.sweep_id = t.sweep_id AND p.trial = t.trial
  LEFT JOIN m ON m.run_id = t.run_id
  ORDER BY t.sweep_id, t.trial`
}

/** A DOUBLE literal that reads back as the same double (exponent form: DuckDB reads it as DOUBLE, not DECIMAL). */
const doubleSql = (x: number): string => x.toExponential()

/**
 * t_{0.975}(n - 1) as a SQL expression of the count `n`, the same numbers as `tQuantile975`: its
 * values for df 1..EXACT_DF as a list, then the same series in df; NULL for n < 2.
 */
export const t975Sql = (n: string): string => {
  const df = `(${n} - 1)`
  const series = SERIES_975.map((g, k) => (k === 0 ? doubleSql(g) : `${doubleSql(g)} / pow(${df}, ${k})`)).join(" + ")
  return `CASE WHEN ${n} < 2 THEN NULL WHEN ${df} <= ${EXACT_DF} THEN [${exact975().map(doubleSql).join(", ")}][${df}] ` +
    `ELSE ${series} END`
}

/**
 * The `summary` view. Per sweep, point (param combination), node and metric over the trial seeds:
 * n, mean, stddev (sample), ci95 = t(0.975, n-1) * stddev / sqrt(n). With a baseline, per trial the
 * metric minus the same metric of the baseline node in the same trial (same seed), for nodes of the
 * baseline node's kind, aggregated the same way: diff_n, diff_mean, diff_stddev, diff_ci95.
 */
export const summaryViewSql = (params: ReadonlyArray<ParamColumn>): string => {
  const p = paramPivot(params, "tp.")
  return `
  CREATE OR REPLACE VIEW summary AS
  WITH vals AS (
    SELECT t.sweep_id, t.point, t.run_id, m.node_id, m.name AS metric, m.value
    FROM sweep_trials t JOIN metrics m ON m.run_id = t.run_id AND m.step IS NULL
  ),
  diffs AS (
    SELECT v.sweep_id, v.point, v.node_id, v.metric, v.value - b.value AS diff
    FROM vals v
    JOIN sweeps s ON s.sweep_id = v.sweep_id AND s.baseline IS NOT NULL AND v.node_id <> s.baseline
    JOIN vals b ON b.run_id = v.run_id AND b.node_id = s.baseline AND b.metric = v.metric
    JOIN nodes nv ON nv.run_id = v.run_id AND nv.node_id = v.node_id
    JOIN nodes nb ON nb.run_id = v.run_id AND nb.node_id = b.node_id AND nb.kind = nv.kind
  ),
  stats AS (
    SELECT sweep_id, point, node_id, metric, count(value) AS n, avg(value) AS mean, stddev_samp(value) AS sd
    FROM vals GROUP BY sweep_id, point, node_id, metric
  ),
  dstats AS (
    SELECT sweep_id, point, node_id, metric, count(diff) AS n, avg(diff) AS mean, stddev_samp(diff) AS sd
    FROM diffs GROUP BY sweep_id, point, node_id, metric
  ),
  p AS (
    SELECT t.sweep_id, t.point${p.map((x) => `,\n      ${x}`).join("")}
    FROM sweep_trials t JOIN trial_params tp ON tp.sweep_id = t.sweep_id AND tp.trial = t.trial
    GROUP BY t.sweep_id, t.point
  )
  SELECT s.sweep_id, s.point${params.map((x) => `, p.${sqlIdent(x.param)}`).join("")},
         s.node_id, s.metric, s.n, s.mean, s.sd AS stddev, (${t975Sql("s.n")}) * s.sd / sqrt(s.n) AS ci95,
         w.baseline AS baseline, d.n AS diff_n, d.mean AS diff_mean, d.sd AS diff_stddev,
         (${t975Sql("d.n")}) * d.sd / sqrt(d.n) AS diff_ci95
  FROM stats s
  JOIN sweeps w ON w.sweep_id = s.sweep_id
  LEFT JOIN dstats d ON d.sweep_id = s.sweep_id AND d.point = s.point AND d.node_id = s.node_id AND d.metric = s.metric
  LEFT JOIN p ON p.sweep_id = s.sweep_id AND p.point = s.point
  ORDER BY s.sweep_id, s.point, s.node_id, s.metric`
}
