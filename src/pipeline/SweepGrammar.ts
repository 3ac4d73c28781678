/**
 * The sweep grammar: the `sweep:` section of a pipeline and its expansion into trials (dag/SweepRunner.ts
 * runs them). A sweep names params by path (`<node>.params.<path inside params>`) and gives them values
 * three ways, combined as a product:
 *
 * ```yaml
 * sweep:
 *   grid:                       # cartesian product, first path varies slowest
 *     student_kd.params.objective.temperature: [1, 2, 4, 8, 20]
 *     student_kd.params.objective.divergence: [forward_kl, reverse_kl, jsd]
 *   zip:                        # lock-step: the i-th values go together (equal lengths)
 *     student_kd.params.optimizer.learningRate: [0.001, 0.01]
 *     student_kd.params.batchSize: [64, 256]
 *   random:                     # n seeded samples: from a list, or a range {min, max, log?, int?}
 *     n: 8
 *     seed: 3                   # default: the pipeline's seed
 *     params:
 *       student_kd.params.objective.alpha: { min: 0.1, max: 0.9 }
 *   seeds: 3                    # repeats: trial seed = pipeline seed + r, or a list [1, 7, 42]
 *   baseline: student_scratch   # optional: paired differences compare against this node's metrics
 * ```
 *
 * Points = grid points x zip points x random samples (a missing section contributes one empty point);
 * trials = points x seeds, trial index = point * seeds + repeat. A trial is the base document with the
 * point's values written in and the trial seed as the pipeline seed (nodes with their own `seed:`
 * keep it), resolved by `resolvePipeline`, so an ill-typed value is a load-time error that points at
 * the value in the `sweep:` section. Paths are checked against the node's kind (unknown node, a param
 * the kind does not have) with the nearest valid name suggested. Expansion is pure and deterministic.
 */
import type { SchemaAST } from "effect"
import { Either, Schema } from "effect"
import { deriveSeed, makeRng } from "../domain/Random.js"
import { choices, didYouMean } from "../domain/Suggest.js"
import type { KindRegistry } from "../nodes/Registry.js"
import { alternatives, decodeChecked, describeSchema, unknownKeyMessage } from "./Issues.js"
import type { Pipeline, PipelineDoc, PipelineIssue, SourceMap } from "./Pipeline.js"
import { issueAt, PipelineError } from "./Pipeline.js"
import { resolvePipeline } from "./Validate.js"

type Path = ReadonlyArray<string | number>

// ---------------------------------------------------------------------------------------------------
// Grammar

const PositiveInt = Schema.Int.pipe(Schema.positive())

/** A range to sample from: uniform in [min, max], or log-uniform; `int` rounds to an integer. */
export const SweepRange = Schema.Struct({
  min: Schema.Number,
  max: Schema.Number,
  log: Schema.optional(Schema.Boolean),
  int: Schema.optional(Schema.Boolean)
})
export type SweepRange = typeof SweepRange.Type

const Values = Schema.NonEmptyArray(Schema.Unknown)

export const SweepDoc = Schema.Struct({
  grid: Schema.optional(Schema.Record({ key: Schema.String, value: Values })),
  zip: Schema.optional(Schema.Record({ key: Schema.String, value: Values })),
  random: Schema.optional(
    Schema.Struct({
      n: PositiveInt,
      seed: Schema.optional(Schema.Int),
      params: Schema.Record({ key: Schema.String, value: Schema.Union(Values, SweepRange) })
    })
  ),
  seeds: Schema.optional(Schema.Union(PositiveInt, Schema.NonEmptyArray(Schema.Int))),
  baseline: Schema.optional(Schema.String)
})
export type SweepDoc = typeof SweepDoc.Type

// ---------------------------------------------------------------------------------------------------
// The expanded sweep

/** One trial: a point of the sweep at one seed, as a runnable pipeline. */
export interface SweepTrial {
  /** 0-based, in expansion order: point * seeds + repeat. */
  readonly index: number
  /** Which param combination (0-based); trials of one point differ only in their seed. */
  readonly point: number
  readonly repeat: number
  readonly seed: number
  /** Swept path -> value, in the order of `Sweep.paths`. */
  readonly params: ReadonlyArray<readonly [string, unknown]>
  readonly pipeline: Pipeline
}

export interface Sweep {
  /** The pipeline as written (the values in `nodes:`), what `distillery run` runs. */
  readonly pipeline: Pipeline
  readonly spec: SweepDoc
  /** Every swept path, grid first, then zip, then random, each in declaration order. */
  readonly paths: ReadonlyArray<string>
  readonly seeds: ReadonlyArray<number>
  /** The node named by `baseline:`, when given. */
  readonly baseline?: string
  /**
   * The node whose final metrics paired differences subtract: the baseline itself when it outputs
   * Metrics, else the one node with a Metrics output that reads the baseline (its evaluate node).
   */
  readonly baselineNode?: string
  readonly trials: ReadonlyArray<SweepTrial>
}

/** "student_kd.params.objective.temperature" -> node, then the path inside params. */
export interface ParamPath {
  readonly node: string
  readonly path: ReadonlyArray<string>
}

export const parseParamPath = (text: string): ParamPath | undefined => {
  const parts = text.split(".")
  if (parts.length < 3 || parts[1] !== "params" || parts.some((p) => p.length === 0)) return undefined
  return { node: parts[0]!, path: parts.slice(2) }
}

/** A short human label of a value in messages and progress lines. */
export const describeValue = (value: unknown): string =>
  typeof value === "string" ? value : JSON.stringify(value) ?? String(value)

/** `temperature=4 divergence=jsd`: the last segment of each path, which is what people call it. */
export const describePoint = (params: ReadonlyArray<readonly [string, unknown]>): string =>
  params.map(([path, value]) => `${path.split(".").slice(-1)[0]}=${describeValue(value)}`).join(" ")

// ---------------------------------------------------------------------------------------------------
// Param paths against a kind's params Schema

/**
 * Why `path` names nothing in a params schema, or undefined when it names a param. Through unions
 * (e.g. `model` is an mlp or a cnn) a key of any member counts.
 */
export const paramPathProblem = (schema: SchemaAST.AST, path: ReadonlyArray<string>): string | undefined => {
  let current: ReadonlyArray<SchemaAST.AST> = alternatives(schema)
  for (let i = 0; i < path.length; i++) {
    const segment = path[i]!
    const where = i === 0 ? "" : ` in '${path.slice(0, i).join(".")}'`
    const next: Array<SchemaAST.AST> = []
    const keys: Array<string> = []
    let structured = false
    for (const ast of current) {
      if (ast._tag === "TypeLiteral") {
        structured = true
        for (const ps of ast.propertySignatures) {
          keys.push(String(ps.name))
          if (String(ps.name) === segment) next.push(...alternatives(ps.type))
        }
        for (const is of ast.indexSignatures) next.push(...alternatives(is.type))
      } else if (ast._tag === "TupleType") {
        structured = true
        const index = Number(segment)
        if (Number.isInteger(index) && index >= 0) {
          const element = ast.elements[index]
          if (element !== undefined) next.push(...alternatives(element.type))
          else for (const rest of ast.rest) next.push(...alternatives(rest.type))
        }
      }
    }
    if (next.length === 0) {
      const unique = [...new Set(keys)]
      if (unique.length > 0) {
        return unknownKeyMessage("param", `'${segment}'${where}`, segment, unique)
      }
      if (structured) return `'${segment}'${where} is not a valid list index`
      const kinds = [...new Set(current.filter((a) => a._tag !== "UndefinedKeyword").map(describeSchema))]
      return `'${path.slice(0, i).join(".")}' is ${kinds.join(" or ")}; it has no field '${segment}'`
    }
    current = next
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------
// Expansion (pure)

type Assignment = ReadonlyArray<readonly [string, unknown]>

/** Cartesian product, first key slowest. */
export const gridPoints = (grid: Readonly<Record<string, ReadonlyArray<unknown>>>): ReadonlyArray<Assignment> => {
  let points: Array<Assignment> = [[]]
  for (const [path, values] of Object.entries(grid)) {
    points = points.flatMap((point) => values.map((value) => [...point, [path, value] as const]))
  }
  return points
}

/** Lock-step lists: point i takes the i-th value of every path (lengths must be equal). */
export const zipPoints = (zip: Readonly<Record<string, ReadonlyArray<unknown>>>): ReadonlyArray<Assignment> => {
  const entries = Object.entries(zip)
  if (entries.length === 0) return [[]]
  const n = Math.min(...entries.map(([, values]) => values.length))
  return Array.from({ length: n }, (_, i) => entries.map(([path, values]) => [path, values[i]] as const))
}

const isRange = (v: unknown): v is SweepRange => typeof v === "object" && v !== null && !Array.isArray(v)

/** One sample of a range or list with a seeded generator. */
export const sampleValue = (spec: ReadonlyArray<unknown> | SweepRange, u: () => number): unknown => {
  if (!isRange(spec)) return spec[Math.floor(u() * spec.length)]
  const { min, max } = spec
  if (spec.int === true) {
    if (spec.log === true) {
      const x = Math.exp(Math.log(min) + u() * (Math.log(max + 1) - Math.log(min)))
      return Math.min(Math.max(Math.floor(x), Math.ceil(min)), Math.floor(max))
    }
    const lo = Math.ceil(min)
    return lo + Math.floor(u() * (Math.floor(max) - lo + 1))
  }
  return spec.log === true ? Math.exp(Math.log(min) + u() * (Math.log(max) - Math.log(min))) : min + u() * (max - min)
}

/**
 * n samples; each path has its own generator (seeded by the seed, the path and the sample index), so
 * reordering the YAML keys or adding a path does not change the other paths' samples.
 */
export const randomPoints = (
  random: { readonly n: number; readonly params: Readonly<Record<string, ReadonlyArray<unknown> | SweepRange>> },
  seed: number
): ReadonlyArray<Assignment> =>
  Array.from({ length: random.n }, (_, i) =>
    Object.entries(random.params).map(([path, spec]) => [path, sampleValue(spec, makeRng(deriveSeed(seed, "sweep", path, i)).next)] as const)
  )

/** Every point of the sweep: grid x zip x random. */
export const sweepPoints = (spec: SweepDoc, seed: number): ReadonlyArray<Assignment> => {
  const sections = [
    spec.grid === undefined ? [[]] : gridPoints(spec.grid),
    spec.zip === undefined ? [[]] : zipPoints(spec.zip),
    spec.random === undefined ? [[]] : randomPoints(spec.random, spec.random.seed ?? seed)
  ]
  return sections.reduce<ReadonlyArray<Assignment>>(
    (acc, points) => acc.flatMap((a) => points.map((p) => [...a, ...p])),
    [[]]
  )
}

/** The trial seeds: `seeds: N` gives base, base + 1, ..., a list is taken as is, none gives [base]. */
export const sweepSeeds = (spec: SweepDoc, base: number): ReadonlyArray<number> =>
  spec.seeds === undefined
    ? [base]
    : typeof spec.seeds === "number"
      ? Array.from({ length: spec.seeds }, (_, r) => base + r)
      : spec.seeds

const clone = <A>(value: A): A => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as A))

/** Writes `value` at `path` inside `target`, creating missing objects on the way. */
const setIn = (target: Record<string, unknown>, path: ReadonlyArray<string>, value: unknown): void => {
  let node: Record<string, unknown> | Array<unknown> = target
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!
    const child: unknown = Array.isArray(node) ? node[Number(key)] : node[key]
    if (typeof child === "object" && child !== null) {
      node = child as Record<string, unknown>
    } else {
      const fresh: Record<string, unknown> = {}
      if (Array.isArray(node)) node[Number(key)] = fresh
      else node[key] = fresh
      node = fresh
    }
  }
  const last = path[path.length - 1]!
  if (Array.isArray(node)) node[Number(last)] = clone(value)
  else node[last] = clone(value)
}

/** The base document with a point's values written in, the trial seed as pipeline seed, no sweep. */
export const applyPoint = (doc: PipelineDoc, point: Assignment, seed: number): PipelineDoc => {
  const nodes = doc.nodes.map((n) => ({ ...n, params: clone(n.params) ?? {} }))
  for (const [text, value] of point) {
    const parsed = parseParamPath(text)!
    const node = nodes.find((n) => n.id === parsed.node)!
    setIn(node.params as Record<string, unknown>, parsed.path, value)
  }
  const { sweep: _sweep, ...rest } = doc
  return { ...rest, seed, nodes }
}

// ---------------------------------------------------------------------------------------------------
// Checking and resolving

/** Where the values of a swept path are written: ["sweep", section, path] (random: under params). */
const valuesLocation = (spec: SweepDoc, path: string): Path =>
  spec.grid?.[path] !== undefined
    ? ["sweep", "grid", path]
    : spec.zip?.[path] !== undefined
      ? ["sweep", "zip", path]
      : ["sweep", "random", "params", path]

/**
 * Resolves a pipeline document that has a `sweep:` section into its trials, or every problem at once:
 * the base pipeline's own, the sweep section's shape, each path (unknown node, param the kind does
 * not have), zip lengths, the baseline, then each trial's resolution (ill-typed values), each with
 * file:line:column.
 */
export const resolveSweep = (
  input: unknown,
  registry: KindRegistry,
  source: SourceMap
): Either.Either<Sweep, PipelineError> => {
  const base = resolvePipeline(input, registry, source)
  if (Either.isLeft(base)) return Either.left(base.left)
  const pipeline = base.right
  const doc = pipeline.doc
  const issues: Array<PipelineIssue> = []
  const report = (path: Path, message: string) => {
    const issue = issueAt(source, path, message)
    // The same problem found through several trials is reported once.
    if (!issues.some((i) => i.line === issue.line && i.column === issue.column && i.message === message)) issues.push(issue)
  }
  const fail = () => Either.left(new PipelineError({ file: source.file, issues }))

  if (doc.sweep === undefined) {
    report([], "the pipeline has no `sweep:` section: add one (grid, zip, random, seeds) or use `distillery run`")
    return fail()
  }
  const decoded = decodeChecked(SweepDoc, doc.sweep, { noun: "key", who: "sweep", whole: "" })
  if (Either.isLeft(decoded)) {
    for (const { path, message } of decoded.left) report(["sweep", ...path], message)
    return fail()
  }
  const spec = decoded.right

  // Paths: each names a node of the document and a param its kind has, and is swept once.
  const nodeIds = doc.nodes.map((n) => n.id)
  const seen = new Map<string, string>()
  const sections: ReadonlyArray<readonly [string, Readonly<Record<string, unknown>> | undefined, Path]> = [
    ["grid", spec.grid, ["sweep", "grid"]],
    ["zip", spec.zip, ["sweep", "zip"]],
    ["random", spec.random?.params, ["sweep", "random", "params"]]
  ]
  const paths: Array<string> = []
  for (const [section, entries, at] of sections) {
    for (const text of Object.keys(entries ?? {})) {
      const where = [...at, text]
      const previous = seen.get(text)
      if (previous !== undefined) {
        report(where, `sweep: '${text}' is swept twice (in ${previous} and ${section}); sweep each param once`)
        continue
      }
      seen.set(text, section)
      paths.push(text)
      const parsed = parseParamPath(text)
      if (parsed === undefined) {
        const first = text.split(".")[0] ?? text
        report(where, `sweep: '${text}' is not a param path: write <node>.params.<param>, e.g. '${nodeIds.includes(first) ? first : nodeIds[0] ?? "node"}.params.epochs'`)
        continue
      }
      const node = doc.nodes.find((n) => n.id === parsed.node)
      if (node === undefined) {
        report(where, `sweep: '${text}': unknown node '${parsed.node}'${didYouMean(parsed.node, nodeIds)}; nodes are: ${choices(nodeIds)}`)
        continue
      }
      // Macro nodes (expanded later) have no kind in the registry: their values are checked per trial.
      const kind = registry.kinds.get(node.kind)
      if (kind === undefined) continue
      const problem = paramPathProblem(kind.params.ast, parsed.path)
      if (problem !== undefined) report(where, `sweep: '${text}': node '${node.id}' (${node.kind}): ${problem}`)
    }
  }
  if (spec.zip !== undefined) {
    const lengths = Object.entries(spec.zip).map(([path, values]) => [path, values.length] as const)
    const n = lengths[0]?.[1]
    for (const [path, length] of lengths) {
      if (length !== n) {
        report(["sweep", "zip", path], `sweep: zip lists must have equal lengths: '${lengths[0]![0]}' has ${n} values but '${path}' has ${length}`)
      }
    }
  }
  if (spec.random !== undefined) {
    for (const [path, range] of Object.entries(spec.random.params)) {
      if (!isRange(range)) continue
      const where = ["sweep", "random", "params", path]
      if (!(range.min <= range.max)) report(where, `sweep: '${path}': min (${range.min}) must not exceed max (${range.max})`)
      if (range.log === true && !(range.min > 0)) report(where, `sweep: '${path}': a log range needs min > 0, got ${range.min}`)
      if (range.int === true && Math.ceil(range.min) > Math.floor(range.max)) {
        report(where, `sweep: '${path}': no integer lies in [${range.min}, ${range.max}]`)
      }
    }
  }
  let baselineNode: string | undefined
  if (spec.baseline !== undefined) {
    const baseline = pipeline.nodes.find((n) => n.id === spec.baseline)
    if (baseline === undefined) {
      report(["sweep", "baseline"], `sweep: baseline '${spec.baseline}' is not a node${didYouMean(spec.baseline, pipeline.nodes.map((n) => n.id))}; nodes are: ${choices(pipeline.nodes.map((n) => n.id))}`)
    } else if (Object.values(baseline.kind.outputs).includes("Metrics")) {
      baselineNode = baseline.id
    } else {
      const readers = pipeline.nodes.filter(
        (n) => Object.values(n.kind.outputs).includes("Metrics") && Object.values(n.inputs).some((r) => r.node === baseline.id)
      )
      const byModel = readers.filter((n) => n.inputs.model?.node === baseline.id)
      const chosen = readers.length === 1 ? readers : byModel
      if (chosen.length === 1) baselineNode = chosen[0]!.id
      else if (readers.length === 0) {
        report(["sweep", "baseline"], `sweep: baseline '${baseline.id}' (${baseline.kind.kind}) has no metrics and no node evaluates it: name an evaluate node as the baseline`)
      } else {
        report(["sweep", "baseline"], `sweep: baseline '${baseline.id}' is evaluated by several nodes (${choices(readers.map((n) => n.id))}): name one of them as the baseline`)
      }
    }
  }
  if (issues.length > 0) return fail()

  // Trials: each point at each seed, resolved like any pipeline; problems point at the sweep value.
  const seeds = sweepSeeds(spec, pipeline.seed)
  const points = sweepPoints(spec, pipeline.seed)
  const trials: Array<SweepTrial> = []
  const nodeIndex = new Map(doc.nodes.map((n, i) => [n.id, i] as const))
  points.forEach((point, p) => {
    seeds.forEach((seed, r) => {
      const trialDoc = applyPoint(doc, point, seed)
      // Maps a problem in a swept param to the value in the sweep section that caused it.
      const sweptAt = (path: Path): { readonly at: Path; readonly label: string } | undefined => {
        if (path[0] !== "nodes" || path[2] !== "params") return undefined
        for (const [text, value] of point) {
          const parsed = parseParamPath(text)!
          if (nodeIndex.get(parsed.node) !== path[1]) continue
          const inner = path.slice(3).map(String)
          const overlap = Math.min(inner.length, parsed.path.length)
          if (inner.slice(0, overlap).join(".") !== parsed.path.slice(0, overlap).join(".")) continue
          const location = valuesLocation(spec, text)
          const values = location[1] === "random" ? undefined : (location[1] === "grid" ? spec.grid : spec.zip)![text]!
          const i = values?.findIndex((v) => JSON.stringify(v) === JSON.stringify(value)) ?? -1
          return { at: i >= 0 ? [...location, i] : location, label: `${text} = ${describeValue(value)}` }
        }
        return undefined
      }
      const trialSource: SourceMap = {
        file: source.file,
        locate: (path) => {
          const swept = sweptAt(path)
          return swept !== undefined ? source.locate(swept.at) ?? source.locate(swept.at.slice(0, -1)) : source.locate(path)
        }
      }
      const resolved = resolvePipeline(trialDoc, registry, trialSource)
      if (Either.isLeft(resolved)) {
        for (const issue of resolved.left.issues) {
          const swept = sweptAt(issue.path)
          const message = swept !== undefined
            ? `sweep value ${swept.label}: ${issue.message}`
            : `sweep trial ${p * seeds.length + r} (${describePoint(point)}, seed ${seed}): ${issue.message}`
          const key = `${issue.line}:${issue.column}:${message}`
          if (!issues.some((i) => `${i.line}:${i.column}:${i.message}` === key)) issues.push({ ...issue, message })
        }
        return
      }
      trials.push({ index: p * seeds.length + r, point: p, repeat: r, seed, params: point, pipeline: resolved.right })
    })
  })
  if (issues.length > 0) return fail()
  return Either.right({
    pipeline,
    spec,
    paths,
    seeds,
    ...(spec.baseline !== undefined ? { baseline: spec.baseline } : {}),
    ...(baselineNode !== undefined ? { baselineNode } : {}),
    trials
  })
}
