/**
 * Macro nodes: compact YAML that stands for several plain nodes, expanded before validation so that
 * the rest of the system (validation, cache keys, the executor, `distillery graph`) only ever sees
 * plain nodes. Expansion is a pure function of the document, so cache keys are stable; expanded nodes
 * report problems at the macro node's YAML position (the source map is rewritten to point there).
 *
 * `born_again` (born-again networks, Furlanello et al. 2018): generation k's student is generation
 * k + 1's teacher.
 *
 * ```yaml
 * - id: ban
 *   kind: born_again
 *   inputs: { data: mnist, teacher: teacher }   # teacher (a Model) is optional
 *   params:
 *     generations: 3                             # 1..16
 *     model: { type: mlp, hidden: [128, 128] }   # every other param is a train param ...
 *     objective: { divergence: forward_kl, temperature: 4, alpha: 0.5 }  # ... used by distilled generations
 *     generate: { topk: 5 }                      # optional: params of the transfer-set generate nodes
 *     evaluate: { split: test }                  # optional: params of the evaluate nodes
 *     ensemble: { mode: average_probs }          # optional: how the generations are ensembled
 * ```
 * expands to, in this order:
 * - `ban_teacher_soft` (generate, only with a teacher input): the teacher's soft labels;
 * - for k = 1..G: `ban_gen<k>` (train: generation 1 from the teacher's soft labels with the objective,
 *   or from scratch on hard labels without a teacher and without the objective; generation k > 1 from
 *   `ban_gen<k-1>_soft`), `ban_gen<k>_soft` (generate, for k < G), `ban_gen<k>_eval` (evaluate, with
 *   the previous generation or the teacher as its `teacher` for fidelity), `ban_gen<k>_test`
 *   (generate on the evaluation split);
 * - for G >= 2: `ban_ensemble` (ensemble of the `_test` outputs with equal weights; past four
 *   generations a chain `ban_ensemble_part<i>` feeds it, weighted by how many generations each part
 *   already holds, which gives exactly the equal-weight ensemble) and `ban_ensemble_eval`
 *   (evaluate_soft).
 * Another node's input naming `ban` or `ban.model` gets the last generation's model.
 *
 * The macro's params are checked once, against the kinds they feed (train, generate, evaluate,
 * ensemble), and reported as the macro node's, not once per expanded node.
 *
 * Each generation is a fresh network: `ban_gen<k>` gets the seed deriveSeed(s, "<id>", "generation", k),
 * s being the macro node's `seed` or else the pipeline's, so generations start from different initial
 * weights and batch orders (with one seed they would only retrace each other). The other expanded
 * nodes get the macro node's `seed` when it has one.
 */
import { Either } from "effect"
import { deriveSeed } from "../domain/Random.js"
import type { KindRegistry } from "../nodes/Registry.js"
import { decodeChecked } from "./Issues.js"
import type { PipelineIssue, SourceMap } from "./Pipeline.js"
import { issueAt, locateNearest } from "./Pipeline.js"

type Path = ReadonlyArray<string | number>
type Json = Record<string, unknown>

/** The macro kinds; any other kind is left for the registry. */
export const macroKinds: ReadonlyArray<string> = ["born_again"]

export interface Expansion {
  /** The document with every macro node replaced by its plain nodes. */
  readonly doc: unknown
  /** Positions for paths in `doc`; paths inside an expanded node point into its macro node. */
  readonly source: SourceMap
  /** Problems with the macro nodes themselves (positions already resolved). */
  readonly issues: ReadonlyArray<PipelineIssue>
}

/** Where an expanded node's paths point in the original document. */
interface Origin {
  readonly index: number
  readonly macro: boolean
  /** Prefix inside the macro's params where this node's params come from. */
  readonly params: Path
  /** Expanded input port -> the macro's input port it comes from. */
  readonly inputs: Readonly<Record<string, string>>
}

const isRecord = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

const MAX_GENERATIONS = 16
/** The ensemble kind's ports, in order. */
const ENSEMBLE_PORTS = ["a", "b", "c", "d"] as const
const MACRO_PARAMS = ["generations", "generate", "evaluate", "ensemble"]

interface Expanded {
  readonly node: Json
  readonly origin: Origin
}

/**
 * Problems of `params` against `kind`'s params Schema, at paths under `at`, named after `prefix`
 * (params of another kind than the macro's, e.g. its `generate:` block, are named `generate.<key>`).
 */
const checkParams = (
  registry: KindRegistry | undefined,
  kind: string,
  params: Json,
  at: Path,
  who: string,
  prefix: ReadonlyArray<string>,
  extraKeys: ReadonlyArray<string>
): Array<readonly [Path, string]> => {
  const schema = registry?.kinds.get(kind)?.params
  if (schema === undefined) return []
  const decoded = decodeChecked(schema, params, { noun: "param", who, prefix, extraKeys })
  return Either.isLeft(decoded) ? decoded.left.map(({ path, message }) => [[...at, ...path], message] as const) : []
}

/** Expands one born_again node (at `index`), or returns its problems as (path, message) pairs. */
const bornAgain = (
  node: Json,
  index: number,
  pipelineSeed: number,
  registry: KindRegistry | undefined
): { readonly nodes: ReadonlyArray<Expanded>; readonly alias: readonly [string, string] } | ReadonlyArray<readonly [Path, string]> => {
  const at = (...rest: Path): Path => ["nodes", index, ...rest]
  const id = node.id
  if (typeof id !== "string") return [[at("id"), "born_again node: 'id' must be a string"]]
  const who = `node '${id}' (born_again)`
  const problems: Array<readonly [Path, string]> = []
  const params = node.params ?? {}
  const inputs = node.inputs ?? {}
  if (!isRecord(params)) problems.push([at("params"), `${who}: params must be a map`])
  if (!isRecord(inputs)) problems.push([at("inputs"), `${who}: inputs must be a map`])
  if (!isRecord(params) || !isRecord(inputs)) return problems

  const generations = params.generations
  if (generations === undefined) {
    problems.push([at("params"), `${who}: missing required param 'generations' (how many generations to train, 1 to ${MAX_GENERATIONS})`])
  } else if (typeof generations !== "number" || !Number.isInteger(generations) || generations < 1 || generations > MAX_GENERATIONS) {
    problems.push([at("params", "generations"), `${who}: param 'generations' must be an integer from 1 to ${MAX_GENERATIONS}, got ${JSON.stringify(generations)}`])
  }
  for (const key of ["generate", "evaluate", "ensemble"]) {
    if (params[key] !== undefined && !isRecord(params[key])) problems.push([at("params", key), `${who}: param '${key}' must be a map of ${key === "ensemble" ? "ensemble" : key} params`])
  }
  if (isRecord(params.ensemble)) {
    for (const key of Object.keys(params.ensemble)) {
      if (key !== "mode") problems.push([at("params", "ensemble", key), `${who}: param 'ensemble.${key}' is not allowed: the generations get equal weights; give only 'mode'`])
    }
  }
  for (const [port, ref] of Object.entries(inputs)) {
    if (port !== "data" && port !== "teacher") {
      problems.push([at("inputs", port), `${who}: unknown input '${port}'; inputs of born_again are: 'data' (Dataset) and 'teacher' (Model, optional)`])
    } else if (typeof ref !== "string") {
      problems.push([at("inputs", port), `${who}: input '${port}' must name a node`])
    }
  }
  if (node.seed !== undefined && !Number.isInteger(node.seed)) problems.push([at("seed"), `${who}: 'seed' must be an integer`])
  if (inputs.data === undefined) problems.push([at(node.inputs === undefined ? "kind" : "inputs"), `${who}: missing input 'data' (Dataset)`])
  if (problems.length > 0) return problems

  const G = generations as number
  const data = inputs.data as string
  const teacher = inputs.teacher as string | undefined
  const trainParams: Json = Object.fromEntries(Object.entries(params).filter(([k]) => !MACRO_PARAMS.includes(k)))
  const { objective: _objective, ...scratchParams } = trainParams
  const generateParams = (params.generate ?? {}) as Json
  const evaluateParams = (params.evaluate ?? {}) as Json
  const ensembleParams = (params.ensemble ?? {}) as Json
  problems.push(
    ...checkParams(registry, "train", trainParams, at("params"), who, [], MACRO_PARAMS),
    ...checkParams(registry, "generate", generateParams, at("params", "generate"), who, ["generate"], []),
    ...checkParams(registry, "evaluate", evaluateParams, at("params", "evaluate"), who, ["evaluate"], []),
    ...checkParams(registry, "ensemble", ensembleParams, at("params", "ensemble"), who, ["ensemble"], [])
  )
  if (problems.length > 0) return problems
  const evalSplit = typeof evaluateParams.split === "string" ? evaluateParams.split : "test"
  const common: Json = node.seed !== undefined ? { seed: node.seed } : {}
  const baseSeed = node.seed !== undefined ? (node.seed as number) : pipelineSeed

  const out: Array<Expanded> = []
  const add = (
    suffix: string,
    kind: string,
    nodeParams: Json,
    nodeInputs: Record<string, string>,
    description: string,
    paramsFrom: Path,
    inputsFrom: Record<string, string>,
    seed?: number
  ): string => {
    const nodeId = `${id}_${suffix}`
    out.push({
      node: {
        id: nodeId,
        kind,
        ...(Object.keys(nodeParams).length > 0 ? { params: nodeParams } : {}),
        inputs: nodeInputs,
        ...common,
        ...(seed !== undefined ? { seed } : {}),
        description: `born_again '${id}': ${description}`
      },
      origin: { index, macro: true, params: paramsFrom, inputs: inputsFrom }
    })
    return nodeId
  }

  const teacherSoft =
    teacher === undefined
      ? undefined
      : add("teacher_soft", "generate", generateParams, { model: teacher, data }, "the teacher's soft labels", ["generate"], { model: "teacher", data: "data" })
  const tests: Array<string> = []
  let previousSoft = teacherSoft
  let previousModel = teacher
  for (let k = 1; k <= G; k++) {
    const distilled = previousSoft !== undefined
    const gen = add(
      `gen${k}`,
      "train",
      distilled ? trainParams : scratchParams,
      distilled ? { data, teacher: previousSoft! } : { data },
      k === 1 ? (distilled ? "generation 1, distilled from the teacher" : "generation 1, trained on hard labels") : `generation ${k}, distilled from generation ${k - 1}`,
      [],
      k === 1 && distilled ? { data: "data", teacher: "teacher" } : { data: "data" },
      deriveSeed(baseSeed, id, "generation", k)
    )
    if (k < G) {
      previousSoft = add(`gen${k}_soft`, "generate", generateParams, { model: gen, data }, `generation ${k}'s soft labels`, ["generate"], { data: "data" })
    }
    add(
      `gen${k}_eval`,
      "evaluate",
      evaluateParams,
      previousModel === undefined ? { model: gen, data } : { model: gen, data, teacher: previousModel },
      `evaluates generation ${k}`,
      ["evaluate"],
      k === 1 && teacher !== undefined ? { data: "data", teacher: "teacher" } : { data: "data" }
    )
    tests.push(add(`gen${k}_test`, "generate", { split: evalSplit }, { model: gen, data }, `generation ${k}'s outputs on the ${evalSplit} split`, ["evaluate"], { data: "data" }))
    previousModel = gen
  }

  if (G >= 2) {
    // Equal weights over all generations, four inputs at a time: each later part weighs the part
    // before it by the number of generations that part already averages.
    let carried: string | undefined
    let count = 0
    let part = 0
    let rest = tests
    while (rest.length > 0) {
      const room = carried === undefined ? ENSEMBLE_PORTS.length : ENSEMBLE_PORTS.length - 1
      const chunk = rest.slice(0, room)
      rest = rest.slice(room)
      const members = carried === undefined ? chunk : [carried, ...chunk]
      const weights = carried === undefined ? undefined : [count, ...chunk.map(() => 1)]
      count += chunk.length
      part++
      const last = rest.length === 0
      carried = add(
        last ? "ensemble" : `ensemble_part${part}`,
        "ensemble",
        { ...ensembleParams, ...(weights !== undefined ? { weights } : {}) },
        Object.fromEntries(members.map((m, i) => [ENSEMBLE_PORTS[i]!, m])),
        last ? `the ensemble of all ${G} generations` : `part ${part} of the ensemble of the generations`,
        ["ensemble"],
        {}
      )
    }
    add("ensemble_eval", "evaluate_soft", typeof evaluateParams.eceBins === "number" ? { eceBins: evaluateParams.eceBins } : {}, { soft: carried! }, "evaluates the ensemble of the generations", ["evaluate"], {})
  }
  return { nodes: out, alias: [id, `${id}_gen${G}.model`] }
}

/**
 * Replaces every macro node of the document by its plain nodes; see the module comment. With the
 * registry, the macro's params are checked against the kinds they feed.
 */
export const expandMacros = (input: unknown, source: SourceMap, registry?: KindRegistry): Expansion => {
  const unchanged: Expansion = { doc: input, source, issues: [] }
  if (!isRecord(input) || !Array.isArray(input.nodes)) return unchanged
  const nodes = input.nodes as ReadonlyArray<unknown>
  if (!nodes.some((n) => isRecord(n) && typeof n.kind === "string" && macroKinds.includes(n.kind))) return unchanged

  const issues: Array<PipelineIssue> = []
  const expanded: Array<Expanded> = []
  const aliases = new Map<string, string>()
  nodes.forEach((node, index) => {
    if (!isRecord(node) || node.kind !== "born_again") {
      expanded.push({ node: node as Json, origin: { index, macro: false, params: [], inputs: {} } })
      return
    }
    const result = bornAgain(node, index, typeof input.seed === "number" && Number.isInteger(input.seed) ? input.seed : 0, registry)
    if (!("nodes" in result)) {
      for (const [path, message] of result) issues.push(issueAt(source, path, message))
      return
    }
    expanded.push(...result.nodes)
    aliases.set(result.alias[0], result.alias[1])
  })
  if (issues.length > 0) return { doc: input, source, issues }

  // Inputs naming a macro node (or its `model` output) get its last generation's model.
  const rewire = (ref: unknown): unknown => {
    if (typeof ref !== "string") return ref
    const dot = ref.indexOf(".")
    const [target, port] = dot < 0 ? [ref, undefined] : [ref.slice(0, dot), ref.slice(dot + 1)]
    const alias = aliases.get(target)
    return alias !== undefined && (port === undefined || port === "model") ? alias : ref
  }
  const docNodes = expanded.map(({ node, origin }) =>
    !origin.macro && isRecord(node) && isRecord(node.inputs)
      ? { ...node, inputs: Object.fromEntries(Object.entries(node.inputs).map(([port, ref]) => [port, rewire(ref)])) }
      : node
  )

  const translate = (origin: Origin, rest: Path): Path => {
    const base: Path = ["nodes", origin.index]
    if (!origin.macro) return [...base, ...rest]
    if (rest.length === 0) return base
    if (rest[0] === "params") return [...base, "params", ...origin.params, ...rest.slice(1)]
    if (rest[0] === "inputs") {
      const from = rest.length > 1 ? origin.inputs[String(rest[1])] : undefined
      return from === undefined ? [...base, "inputs"] : [...base, "inputs", from]
    }
    return [...base, rest[0]!]
  }
  const mapped: SourceMap = {
    file: source.file,
    locate: (path) => {
      if (path[0] !== "nodes" || typeof path[1] !== "number") return source.locate(path)
      const origin = expanded[path[1]]?.origin
      if (origin === undefined) return undefined
      const target = translate(origin, path.slice(2))
      // Inside a macro node, a key the macro did not spell out falls back to its nearest enclosing key.
      return origin.macro ? locateNearest(source, target, 2) : source.locate(target)
    }
  }
  return { doc: { ...input, nodes: docNodes }, source: mapped, issues: [] }
}
