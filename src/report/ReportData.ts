/**
 * What a report shows, as plain data: the model embedded in the HTML page as JSON, and the pure
 * functions that prepare it from rows of the results store (learning curves, final metrics,
 * teacher-student agreement, where each model goes wrong, and for a sweep a metric against a swept
 * param with 95% confidence intervals across seeds). No Effect and no I/O here: `Load.ts` queries,
 * these functions shape, `Html.ts` renders.
 */
import { Either, Schema } from "effect"
import { didYouMean } from "../domain/Suggest.js"
import type { MetricValue, MistakeCell, StepValue, TrialRecord } from "../store/ReadModel.js"
import { type Summary, summarize } from "./Stats.js"

// ---------------------------------------------------------------------------------------------------
// The report model (embedded in the page as JSON)

/** One line of a learning-curve panel: a metric per epoch, averaged over `n` runs. */
export interface CurveSeries {
  readonly label: string
  readonly metric: string
  /** [epoch, mean value] pairs, by epoch. */
  readonly points: ReadonlyArray<readonly [number, number]>
  readonly n: number
}

/** A set of learning curves drawn together: for a run all train nodes; for a sweep one train node. */
export interface CurveView {
  readonly name: string
  readonly description: string
  readonly series: ReadonlyArray<CurveSeries>
}

export type Role = "teacher" | "distilled" | "scratch" | ""

/** A row of the final-metrics table: one evaluate node, one summary per column (null: not measured). */
export interface FinalsRow {
  readonly node: string
  readonly subject: string
  readonly role: Role
  readonly cells: ReadonlyArray<Summary | null>
}

export interface FinalsTable {
  readonly columns: ReadonlyArray<string>
  /** True for a sweep: cells are means over trials with a 95% interval. */
  readonly aggregated: boolean
  readonly rows: ReadonlyArray<FinalsRow>
}

export interface AgreementBar {
  readonly node: string
  readonly subject: string
  readonly role: Role
  readonly summary: Summary
}

/** One cell of a confusion map: examples of class `label` the model called `prediction` (wrongly). */
export type ConfusionCell = MistakeCell

export interface ConfusionMap {
  readonly node: string
  readonly subject: string
  readonly role: Role
  /** The evaluate node of this model's teacher, whose predictions `teacherRight` counts. */
  readonly teacherNode: string | null
  /** The classes shown, ascending: every label or prediction of a wrong example (at most 30). */
  readonly classes: ReadonlyArray<number>
  readonly cells: ReadonlyArray<ConfusionCell>
  readonly wrong: number
  readonly total: number
  /** Runs summed over (1 for a run, the trials for a sweep). */
  readonly runs: number
}

export interface SweepPoint {
  readonly x: number
  readonly summary: Summary
  /** The trials' values at this point (one per seed). */
  readonly values: ReadonlyArray<number>
}

export interface SweepSeries {
  readonly label: string
  readonly points: ReadonlyArray<SweepPoint>
}

/** A horizontal dashed line on a sweep chart. */
export interface Reference {
  readonly label: string
  readonly value: number
}

/** One chart of a sweep: an evaluate node's metric against the x param, one line per group. */
export interface SweepChart {
  readonly node: string
  readonly subject: string
  readonly role: Role
  readonly metric: string
  readonly series: ReadonlyArray<SweepSeries>
  /**
   * Dashed reference lines: the sweep's baseline (when it names an evaluate node or a run), and the
   * evaluate nodes the sweep did not change (a shared teacher), which get no chart of their own.
   */
  readonly references: ReadonlyArray<Reference>
}

export interface SweepSection {
  readonly params: ReadonlyArray<string>
  /** Param path -> the shortest unambiguous name (`student_kd.params.objective.temperature` -> `temperature`). */
  readonly paramLabels: Readonly<Record<string, string>>
  /** The x param's path, or null when nothing was swept but seeds. */
  readonly x: string | null
  readonly xLabel: string
  /** For a non-numeric x: the values in sweep order; points' `x` index into it. */
  readonly xCategories: ReadonlyArray<string> | null
  /** Whether x is drawn on a log scale (positive values in a roughly geometric progression). */
  readonly xLog: boolean
  readonly group: ReadonlyArray<string>
  readonly metric: string
  readonly charts: ReadonlyArray<SweepChart>
  readonly trials: { readonly columns: ReadonlyArray<string>; readonly rows: ReadonlyArray<ReadonlyArray<string | number | null>> }
}

export interface Report {
  readonly kind: "run" | "sweep"
  readonly id: string
  readonly title: string
  readonly generatedAt: string
  readonly facts: ReadonlyArray<readonly [string, string]>
  readonly notes: ReadonlyArray<string>
  /** `unit`: what a curve's x counts: a classifier's epochs, a language model's optimizer steps. */
  readonly curves: { readonly views: ReadonlyArray<CurveView>; readonly initial: number; readonly unit: CurveUnit }
  readonly finals: FinalsTable
  readonly agreement: ReadonlyArray<AgreementBar>
  readonly confusion: ReadonlyArray<ConfusionMap>
  readonly sweep: SweepSection | null
}

// ---------------------------------------------------------------------------------------------------
// Inputs (rows as read from the store)

export interface NodeRow {
  readonly runId: string
  readonly nodeId: string
  readonly kind: string
  readonly cacheKey: string
  /** Input port -> `node.port`. */
  readonly inputs: Readonly<Record<string, string>>
}

export type { MetricValue, StepValue } from "../store/ReadModel.js"

/** A sweep's trial: its run, seed, status and swept param values. */
export type Trial = TrialRecord

/** What the report options ask for: the sweep chart's y metric, x param and grouping params. */
export interface ReportOptions {
  readonly metric?: string | undefined
  readonly x?: string | undefined
  /** Param names, or `[]` for one line per chart. Undefined: every swept param but x and seeds. */
  readonly group?: ReadonlyArray<string> | undefined
}

/** `--metric`, `--x` or `--group` names nothing the report has. */
export class ReportOptionError extends Schema.TaggedError<ReportOptionError>()("ReportOptionError", {
  option: Schema.String,
  value: Schema.String,
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------------
// Nodes and roles

/** The metrics in the final-metrics table, in this order, when measured. */
export const FINAL_COLUMNS: ReadonlyArray<string> = ["accuracy", "errors", "nll", "ece", "agreement", "fidelity_kl", "params"]

/** The per-epoch metrics drawn as learning curves. */
export const CURVE_METRICS: ReadonlyArray<string> = ["train_loss", "val_loss", "val_accuracy"]

export interface EvalNode {
  readonly node: string
  /** The evaluated model's node. */
  readonly subject: string
  readonly role: Role
  /** The evaluate node that measured this model's teacher on the same data, if any. */
  readonly teacherEval: string | null
  /** How many distinct cache keys the node has across the runs: 1 when a sweep did not change it. */
  readonly keys: number
}

const nodeOf = (ref: string | undefined): string | undefined => (ref === undefined ? undefined : ref.split(".")[0])

/** The distinct nodes of the first run that has them, in recorded order (a sweep's trials share one pipeline). */
export const distinctNodes = (rows: ReadonlyArray<NodeRow>): ReadonlyArray<NodeRow> => {
  const seen = new Map<string, NodeRow>()
  for (const row of rows) if (!seen.has(row.nodeId)) seen.set(row.nodeId, row)
  return [...seen.values()]
}

/** The kinds whose nodes measure a model and count as evaluate nodes: a classifier's, a multi-task language model's. */
export const EVALUATE_KINDS: ReadonlyArray<string> = ["evaluate", "lm_task_evaluate"]

const TRAIN_KINDS: ReadonlyArray<string> = ["train", "lm_train"]

/**
 * The evaluate nodes (EVALUATE_KINDS) with their models' roles: a train or lm_train node with a
 * `teacher` input is `distilled`, and so is an lm_train node whose corpus comes from a teacher's
 * samples (an lm_generate node upstream of its `corpus` or `scored`, through lm_filter, lm_parse,
 * lm_tasks...); a model some node takes as its `teacher`, a generate node labels data with, or an
 * lm_generate node samples such a corpus from is `teacher`; another train or lm_train node is `scratch`.
 */
export const evaluateNodes = (rows: ReadonlyArray<NodeRow>): ReadonlyArray<EvalNode> => {
  const nodes = distinctNodes(rows)
  const byId = new Map(nodes.map((n) => [n.nodeId, n]))
  const teachers = new Set<string>()
  const onSamples = new Set<string>()
  /** The models lm_generate nodes upstream of `from` sample (stopping at models: another lm_train is not this one's data). */
  const samplersAbove = (from: ReadonlyArray<string | undefined>): Set<string> => {
    const found = new Set<string>()
    const seen = new Set<string>()
    const stack = from.map(nodeOf).filter((id): id is string => id !== undefined)
    while (stack.length > 0) {
      const id = stack.pop()!
      if (seen.has(id)) continue
      seen.add(id)
      const n = byId.get(id)
      if (n === undefined || TRAIN_KINDS.includes(n.kind)) continue
      if (n.kind === "lm_generate") {
        const m = nodeOf(n.inputs.model)
        if (m !== undefined) found.add(m)
        continue
      }
      for (const ref of Object.values(n.inputs)) {
        const up = nodeOf(ref)
        if (up !== undefined) stack.push(up)
      }
    }
    return found
  }
  for (const n of nodes) {
    const t = nodeOf(n.inputs.teacher)
    if (t !== undefined && (TRAIN_KINDS.includes(byId.get(t)?.kind ?? "") || EVALUATE_KINDS.includes(n.kind))) teachers.add(t)
    if (n.kind === "generate") {
      const m = nodeOf(n.inputs.model)
      if (m !== undefined) teachers.add(m)
    }
    if (n.kind === "lm_train") {
      const samplers = samplersAbove([n.inputs.corpus, n.inputs.scored])
      for (const m of samplers) if (m !== n.nodeId) (teachers.add(m), onSamples.add(n.nodeId))
    }
  }
  const roleOf = (subject: string): Role => {
    const model = byId.get(subject)
    if (model === undefined || !TRAIN_KINDS.includes(model.kind)) return teachers.has(subject) ? "teacher" : ""
    if (model.inputs.teacher !== undefined || onSamples.has(subject)) return "distilled"
    return teachers.has(subject) ? "teacher" : "scratch"
  }
  const evals = nodes.filter((n) => EVALUATE_KINDS.includes(n.kind))
  return evals.map((e) => {
    const subject = nodeOf(e.inputs.model) ?? e.nodeId
    const teacherRef = e.inputs.teacher
    const teacherEval = teacherRef === undefined
      ? undefined
      : evals.find((o) => o.nodeId !== e.nodeId && o.inputs.model === teacherRef && o.inputs.data === e.inputs.data) ??
        evals.find((o) => o.nodeId !== e.nodeId && o.inputs.model === teacherRef)
    const keys = new Set(rows.filter((r) => r.nodeId === e.nodeId).map((r) => r.cacheKey)).size
    return { node: e.nodeId, subject, role: roleOf(subject), teacherEval: teacherEval?.nodeId ?? null, keys }
  })
}

export type CurveUnit = "epoch" | "step" | "epoch or step"

/** What the curves' x counts: `train` records per epoch, `lm_train` per optimizer step (every `evalEvery`). */
export const curveUnit = (nodes: ReadonlyArray<string>, rows: ReadonlyArray<NodeRow>): CurveUnit => {
  const lm = nodes.map((n) => rows.find((r) => r.nodeId === n)?.kind === "lm_train")
  return lm.length > 0 && lm.every(Boolean) ? "step" : lm.some(Boolean) ? "epoch or step" : "epoch"
}

/** The train nodes that recorded learning curves, in recorded order. */
export const trainNodes = (rows: ReadonlyArray<NodeRow>, steps: ReadonlyArray<StepValue>): ReadonlyArray<string> => {
  const withCurves = new Set(steps.map((s) => s.nodeId))
  return distinctNodes(rows).filter((n) => TRAIN_KINDS.includes(n.kind) && withCurves.has(n.nodeId)).map((n) => n.nodeId)
}

// ---------------------------------------------------------------------------------------------------
// Final metrics, agreement

const valuesOf = (finals: ReadonlyArray<MetricValue>, runs: ReadonlySet<string> | null) => {
  const by = new Map<string, Array<number | null>>()
  for (const m of finals) {
    if (runs !== null && !runs.has(m.runId)) continue
    const k = `${m.nodeId}\u0000${m.name}`
    const list = by.get(k)
    if (list === undefined) by.set(k, [m.value])
    else list.push(m.value)
  }
  return (node: string, name: string) => by.get(`${node}\u0000${name}`) ?? []
}

/** The final-metrics table: per evaluate node, each measured column summarised over the runs given. */
export const finalsTable = (
  evals: ReadonlyArray<EvalNode>,
  finals: ReadonlyArray<MetricValue>,
  runs: ReadonlySet<string> | null,
  aggregated: boolean
): FinalsTable => {
  const get = valuesOf(finals, runs)
  const columns = FINAL_COLUMNS.filter((c) => evals.some((e) => get(e.node, c).length > 0))
  return {
    columns,
    aggregated,
    rows: evals.map((e) => ({ node: e.node, subject: e.subject, role: e.role, cells: columns.map((c) => summarize(get(e.node, c))) }))
  }
}

/** Teacher-student agreement of every evaluate node that measured it. */
export const agreementBars = (
  evals: ReadonlyArray<EvalNode>,
  finals: ReadonlyArray<MetricValue>,
  runs: ReadonlySet<string> | null
): ReadonlyArray<AgreementBar> => {
  const get = valuesOf(finals, runs)
  return evals.flatMap((e) => {
    const summary = summarize(get(e.node, "agreement"))
    return summary === null ? [] : [{ node: e.node, subject: e.subject, role: e.role, summary }]
  })
}

// ---------------------------------------------------------------------------------------------------
// Confusion maps

const MAX_CLASSES = 30

/** A confusion map from the counts of wrong (label, prediction) pairs, keeping the 30 busiest classes. */
export const confusionMap = (
  e: EvalNode,
  cells: ReadonlyArray<ConfusionCell>,
  total: number,
  runs: number
): ConfusionMap => {
  const wrong = cells.filter((c) => c.label !== c.prediction)
  const weight = new Map<number, number>()
  for (const c of wrong) {
    weight.set(c.label, (weight.get(c.label) ?? 0) + c.count)
    weight.set(c.prediction, (weight.get(c.prediction) ?? 0) + c.count)
  }
  const classes = [...weight.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, MAX_CLASSES).map(([k]) => k).sort((a, b) => a - b)
  const shown = new Set(classes)
  return {
    node: e.node,
    subject: e.subject,
    role: e.role,
    teacherNode: e.teacherEval,
    classes,
    cells: wrong.filter((c) => shown.has(c.label) && shown.has(c.prediction)),
    wrong: wrong.reduce((a, c) => a + c.count, 0),
    total,
    runs
  }
}

// ---------------------------------------------------------------------------------------------------
// Learning curves

interface CurveGroup {
  readonly label: string
  readonly runs: ReadonlySet<string>
}

/** Mean curve per (label, metric) of one node over the runs of each group. */
const curveSeries = (node: string, steps: ReadonlyArray<StepValue>, groups: ReadonlyArray<CurveGroup>): Array<CurveSeries> => {
  const out: Array<CurveSeries> = []
  for (const group of groups) {
    for (const metric of CURVE_METRICS) {
      const byStep = new Map<number, Array<number | null>>()
      for (const s of steps) {
        if (s.nodeId !== node || s.name !== metric || !group.runs.has(s.runId)) continue
        const list = byStep.get(s.step)
        if (list === undefined) byStep.set(s.step, [s.value])
        else list.push(s.value)
      }
      const points = [...byStep.entries()]
        .sort((a, b) => a[0] - b[0])
        .flatMap(([step, vs]) => {
          const m = summarize(vs)
          return m === null ? [] : [[step, m.mean] as const]
        })
      if (points.length > 0) out.push({ label: group.label, metric, points, n: group.runs.size })
    }
  }
  return out
}

/** A run's learning curves: one view, a line per train node and metric. */
export const runCurves = (nodes: ReadonlyArray<string>, steps: ReadonlyArray<StepValue>): ReadonlyArray<CurveView> => {
  if (nodes.length === 0) return []
  const runs = new Set(steps.map((s) => s.runId))
  return [{
    name: "all train nodes",
    description: "per epoch, one colour per train node",
    series: nodes.flatMap((node) => curveSeries(node, steps, [{ label: node, runs }]))
  }]
}

/**
 * A sweep's learning curves: a view per train node, a line per combination of swept values (mean over
 * seeds); a node with one cache key across all trials (a shared teacher) is one line.
 */
export const sweepCurves = (
  nodes: ReadonlyArray<string>,
  nodeRows: ReadonlyArray<NodeRow>,
  steps: ReadonlyArray<StepValue>,
  trials: ReadonlyArray<Trial>,
  comboLabel: (t: Trial) => string
): ReadonlyArray<CurveView> =>
  nodes.map((node) => {
    const keys = new Set(nodeRows.filter((r) => r.nodeId === node).map((r) => r.cacheKey))
    const withRun = trials.filter((t): t is Trial & { runId: string } => t.runId !== null)
    if (keys.size <= 1) {
      return {
        name: node,
        description: "the same model in every trial (one cache key)",
        series: curveSeries(node, steps, [{ label: "all trials", runs: new Set(withRun.map((t) => t.runId)) }])
      }
    }
    const groups = new Map<string, Set<string>>()
    for (const t of withRun) {
      const label = comboLabel(t)
      const set = groups.get(label)
      if (set === undefined) groups.set(label, new Set([t.runId]))
      else set.add(t.runId)
    }
    return {
      name: node,
      description: "one colour per combination of swept values, mean over seeds",
      series: curveSeries(node, steps, [...groups.entries()].map(([label, runs]) => ({ label, runs })))
    }
  })

// ---------------------------------------------------------------------------------------------------
// Sweeps

const isSeedParam = (path: string): boolean => /(^|\.)seed$/.test(path)

/** Each path's shortest dotted suffix that no other path shares (`…objective.temperature` -> `temperature`). */
export const paramLabels = (params: ReadonlyArray<string>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const p of params) {
    const parts = p.split(".")
    let label = p
    for (let k = 1; k <= parts.length; k++) {
      const suffix = parts.slice(-k).join(".")
      if (!params.some((o) => o !== p && (o === suffix || o.endsWith(`.${suffix}`)))) {
        label = suffix
        break
      }
    }
    out[p] = label
  }
  return out
}

/** A swept value as text: strings as they are, the rest as JSON. */
export const valueLabel = (v: unknown): string =>
  v === undefined ? "–" : typeof v === "string" ? v : JSON.stringify(v) ?? String(v)

/** Resolves a param the user named: its full path, or a unique dotted suffix of one. */
export const resolveParam = (
  option: string,
  name: string,
  params: ReadonlyArray<string>
): Either.Either<string, ReportOptionError> => {
  if (params.includes(name)) return Either.right(name)
  const matches = params.filter((p) => p.endsWith(`.${name}`))
  if (matches.length === 1) return Either.right(matches[0]!)
  const labels = paramLabels(params)
  return Either.left(
    new ReportOptionError({
      option,
      value: name,
      message: matches.length > 1
        ? `--${option} ${name} matches ${matches.length} swept params: ${matches.join(", ")}; give the full path`
        : params.length === 0
        ? `--${option} ${name}: this sweep has no swept params`
        : `--${option} ${name}: no such swept param${didYouMean(name, [...params, ...Object.values(labels)])}; ` +
          `swept params: ${params.join(", ")}`
    })
  )
}

const isNumericParam = (param: string, trials: ReadonlyArray<Trial>): boolean =>
  trials.length > 0 && trials.every((t) => typeof t.params[param] === "number" && Number.isFinite(t.params[param]))

/** Whether `param`'s value is a function of `x`'s over the trials (each x value goes with one value of it). */
const determinedBy = (param: string, x: string, trials: ReadonlyArray<Trial>): boolean => {
  const seen = new Map<string, string>()
  for (const t of trials) {
    const key = valueLabel(t.params[x])
    const value = valueLabel(t.params[param])
    if ((seen.get(key) ?? value) !== value) return false
    seen.set(key, value)
  }
  return true
}

const coefficientOfVariation = (xs: ReadonlyArray<number>): number => {
  const s = summarize(xs)
  return s === null || s.mean === 0 ? Number.POSITIVE_INFINITY : s.sd / Math.abs(s.mean)
}

/**
 * Whether numeric x values read better on a log scale: all positive, spanning at least a factor of 4,
 * and evenly spaced in ratio rather than in difference (1, 2, 4, 8 but not 1, 2, 3, 4).
 */
export const prefersLogScale = (values: ReadonlyArray<number>): boolean => {
  const xs = [...new Set(values)].sort((a, b) => a - b)
  if (xs.length < 3 || xs[0]! <= 0 || xs[xs.length - 1]! / xs[0]! < 4) return false
  const diffs = xs.slice(1).map((v, i) => v - xs[i]!)
  const ratios = xs.slice(1).map((v, i) => v / xs[i]!)
  return coefficientOfVariation(ratios) < coefficientOfVariation(diffs)
}

export interface SweepInput {
  /** The swept param paths in the sweep's order (seeds excluded from defaults). */
  readonly params: ReadonlyArray<string>
  readonly trials: ReadonlyArray<Trial>
  /** Final metrics (step NULL) of the trials' runs, and of the baseline run if it is one. */
  readonly finals: ReadonlyArray<MetricValue>
  readonly evals: ReadonlyArray<EvalNode>
  /** The sweep's `baseline`: an evaluate node id or a run id (anything else is only shown). */
  readonly baseline: string | null
  readonly options: ReportOptions
}

/** The label of a trial's values of the given params: `divergence=jsd, alpha=0.5`; "" for none. */
export const comboLabeller = (params: ReadonlyArray<string>, labels: Readonly<Record<string, string>>) => (t: Trial): string =>
  params.map((p) => `${labels[p] ?? p}=${valueLabel(t.params[p])}`).join(", ")

/**
 * The sweep section: the metric (default accuracy) of every evaluate node that measured it against
 * the x param (default: the first numeric swept param, else the first), one line per combination of
 * the group params (default: the other swept params but seeds), with mean and 95% CI over the trials
 * at each point, usually the seeds.
 */
export const sweepSection = (input: SweepInput): Either.Either<SweepSection, ReportOptionError> =>
  Either.gen(function*() {
    const { trials, evals, options } = input
    const params = input.params
    const labels = paramLabels(params)
    const candidates = params.filter((p) => !isSeedParam(p))
    const x = options.x !== undefined
      ? yield* resolveParam("x", options.x, params)
      : candidates.find((p) => isNumericParam(p, trials)) ?? candidates[0] ?? null
    const group: Array<string> = []
    if (options.group !== undefined) {
      for (const g of options.group) {
        const p = yield* resolveParam("group", g, params)
        if (p === x) {
          return yield* Either.left(
            new ReportOptionError({ option: "group", value: g, message: `--group ${g} is the x param; group by another one` })
          )
        }
        if (!group.includes(p)) group.push(p)
      }
    } else {
      // A param that moves in lock step with x (a zip partner: every training set's size at once) adds no line.
      group.push(...candidates.filter((p) => p !== x && (x === null || !determinedBy(p, x, trials))))
    }

    const metric = options.metric ?? "accuracy"
    const runOf = new Map<string, Trial>()
    for (const t of trials) if (t.runId !== null) runOf.set(t.runId, t)
    const measured = evals.filter((e) => input.finals.some((m) => m.nodeId === e.node && m.name === metric && runOf.has(m.runId)))
    if (measured.length === 0) {
      const available = [...new Set(input.finals.filter((m) => evals.some((e) => e.node === m.nodeId)).map((m) => m.name))].sort()
      return yield* Either.left(
        new ReportOptionError({
          option: "metric",
          value: metric,
          message: `no evaluate node of this sweep measured '${metric}'${didYouMean(metric, available)}; ` +
            `final metrics: ${available.join(", ") || "none (did any trial finish?)"}`
        })
      )
    }

    const numericX = x !== null && isNumericParam(x, trials)
    const xCategories = numericX ? null : [...new Set(trials.map((t) => (x === null ? "all trials" : valueLabel(t.params[x]))))]
    const xOf = (t: Trial): number =>
      numericX ? (t.params[x!] as number) : xCategories!.indexOf(x === null ? "all trials" : valueLabel(t.params[x]))
    const label = comboLabeller(group, labels)

    // A node with one cache key in every trial (a shared teacher) is a flat line: a reference, not a chart.
    const unchanged = measured.filter((e) => e.keys <= 1)
    const charted = unchanged.length < measured.length ? measured.filter((e) => e.keys > 1) : measured
    const meanOf = (values: ReadonlyArray<number | null>) => summarize(values)?.mean
    const referencesFor = (e: EvalNode): Array<Reference> => {
      const refs: Array<Reference> = []
      // The baseline is an evaluate node (its mean over the trials) or a run (this node's value in it).
      const baselineNode = input.baseline !== null && evals.some((o) => o.node === input.baseline) ? input.baseline : null
      const baselineValue = input.baseline === null || input.baseline === e.node
        ? undefined
        : baselineNode !== null
        ? meanOf(input.finals.filter((m) => m.nodeId === baselineNode && m.name === metric && runOf.has(m.runId)).map((m) => m.value))
        : meanOf(input.finals.filter((m) => m.runId === input.baseline && m.nodeId === e.node && m.name === metric).map((m) => m.value))
      if (baselineValue !== undefined) refs.push({ label: `baseline ${input.baseline}`, value: baselineValue })
      for (const u of unchanged) {
        if (u.node === e.node || u.node === baselineNode) continue
        const v = meanOf(input.finals.filter((m) => m.nodeId === u.node && m.name === metric && runOf.has(m.runId)).map((m) => m.value))
        if (v !== undefined) refs.push({ label: `${u.node} (${u.subject}, same in every trial)`, value: v })
      }
      return refs
    }

    // Lines in sweep order: the order their first trial ran in.
    const groupOrder = [...new Set([...trials].sort((a, b) => a.trial - b.trial).map(label))]
    const charts: Array<SweepChart> = charted.map((e) => {
      const byPoint = new Map<string, Map<number, Array<number>>>()
      for (const m of input.finals) {
        if (m.nodeId !== e.node || m.name !== metric || m.value === null || !Number.isFinite(m.value)) continue
        const t = runOf.get(m.runId)
        if (t === undefined) continue
        const key = label(t)
        const series = byPoint.get(key) ?? new Map<number, Array<number>>()
        byPoint.set(key, series)
        const xv = xOf(t)
        series.set(xv, [...(series.get(xv) ?? []), m.value])
      }
      const series: Array<SweepSeries> = [...byPoint.entries()]
        .sort((a, b) => groupOrder.indexOf(a[0]) - groupOrder.indexOf(b[0]))
        .map(([key, points]) => ({
          label: key === "" ? e.node : key,
          points: [...points.entries()]
            .sort((a, b) => a[0] - b[0])
            .map(([xv, values]) => ({ x: xv, summary: summarize(values)!, values }))
        }))
      return { node: e.node, subject: e.subject, role: e.role, metric, series, references: referencesFor(e) }
    })
    // With no group, each node's chart is one line: several such nodes (methods compared over the same
    // x) share a first chart, a line per node, so they can be read against each other.
    if (group.length === 0 && charts.length >= 2) {
      const references = [...new Map(charts.flatMap((c) => c.references).map((r) => [r.label, r])).values()]
      charts.unshift({
        node: "every evaluate node",
        subject: "",
        role: "",
        metric,
        series: charts.map((c) => ({ label: c.subject === "" ? c.node : `${c.node} (${c.subject})`, points: c.series[0]?.points ?? [] })),
        references
      })
    }

    const get = new Map<string, number | null>()
    for (const m of input.finals) if (m.name === metric) get.set(`${m.runId}\u0000${m.nodeId}`, m.value)
    const shownParams = params.filter((p) => !isSeedParam(p))
    const rows = [...trials]
      .sort((a, b) => a.trial - b.trial)
      .map((t) => [
        t.trial,
        t.seed,
        t.runId,
        t.status,
        ...shownParams.map((p) => valueLabel(t.params[p])),
        ...charted.map((e) => (t.runId === null ? null : get.get(`${t.runId}\u0000${e.node}`) ?? null))
      ])

    return {
      params,
      paramLabels: labels,
      x,
      xLabel: x === null ? "trials" : labels[x] ?? x,
      xCategories,
      xLog: numericX && prefersLogScale(trials.map(xOf)),
      group,
      metric,
      charts,
      trials: {
        columns: ["trial", "seed", "run", "status", ...shownParams.map((p) => labels[p] ?? p), ...charted.map((e) => `${e.node}.${metric}`)],
        rows
      }
    }
  })
