/**
 * Turns a pipeline document (from YAML or the TypeScript builder) into a runnable `Pipeline`, checking
 * everything that can be checked before anything runs: the document's shape, node ids (format and
 * duplicates), kinds (with the nearest name suggested), params against each kind's Schema (unknown,
 * missing, ill-typed), inputs (unknown port, missing input, unknown node or output port, port type
 * mismatch) and cycles (printed as a path). All problems are reported together; Schema problems are
 * worded by pipeline/Issues.ts. Macro nodes (pipeline/Macros.ts) are expanded into plain nodes before
 * any of this.
 */
import { Either, Schema } from "effect"
import { topologicalOrder } from "../dag/Graph.js"
import { portAccepts } from "../domain/Artifact.js"
import { choices, didYouMean } from "../domain/Suggest.js"
import type { InputSpecs } from "../nodes/NodeKind.js"
import type { KindRegistry } from "../nodes/Registry.js"
import { decodeChecked } from "./Issues.js"
import { expandMacros } from "./Macros.js"
import type { Pipeline, PipelineIssue, PortRef, ResolvedNode, SourceMap } from "./Pipeline.js"
import { issueAt, PipelineDoc, PipelineError } from "./Pipeline.js"

type Path = ReadonlyArray<string | number>

const ID_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/

/** Parses "node" or "node.port". */
export const parseRef = (ref: string): { readonly node: string; readonly port?: string } => {
  const dot = ref.indexOf(".")
  return dot < 0 ? { node: ref } : { node: ref.slice(0, dot), port: ref.slice(dot + 1) }
}

export const resolvePipeline = (
  document: unknown,
  registry: KindRegistry,
  original: SourceMap
): Either.Either<Pipeline, PipelineError> => {
  // Macro nodes (born_again) become plain nodes first; their positions map back to the macro node.
  const { doc: input, source, issues: macroIssues } = expandMacros(document, original, registry)
  if (macroIssues.length > 0) return Either.left(new PipelineError({ file: original.file, issues: macroIssues }))
  const issues: Array<PipelineIssue> = []
  const report = (path: Path, message: string) => issues.push(issueAt(source, path, message))
  const fail = () => Either.left(new PipelineError({ file: source.file, issues }))

  const decoded = decodeChecked(PipelineDoc, input, { noun: "key", whole: "the pipeline" })
  if (Either.isLeft(decoded)) {
    for (const { path, message } of decoded.left) report(path, message)
    return fail()
  }
  const doc = decoded.right

  // Ids: format and uniqueness.
  const firstIndex = new Map<string, number>()
  doc.nodes.forEach((node, i) => {
    if (!ID_PATTERN.test(node.id)) {
      report(["nodes", i, "id"], `node id '${node.id}' is not valid: use a letter or '_' followed by letters, digits, '_' or '-'`)
    }
    const first = firstIndex.get(node.id)
    if (first !== undefined) {
      const pos = source.locate(["nodes", first, "id"])
      report(["nodes", i, "id"], `duplicate node id '${node.id}' (first defined${pos ? ` at line ${pos.line}` : ` as node ${first + 1}`})`)
    } else {
      firstIndex.set(node.id, i)
    }
  })

  // Kinds and params.
  const kindNames = [...registry.kinds.keys()]
  const resolvedParams = new Map<string, { params: unknown; encoded: unknown }>()
  doc.nodes.forEach((node, i) => {
    const kind = registry.kinds.get(node.kind)
    if (kind === undefined) {
      report(["nodes", i, "kind"], `node '${node.id}': unknown kind '${node.kind}'${didYouMean(node.kind, kindNames)}; kinds are: ${choices(kindNames)}`)
      return
    }
    const params = decodeChecked(kind.params, node.params ?? {}, { noun: "param", who: `node '${node.id}' (${node.kind})` })
    if (Either.isLeft(params)) {
      for (const { path, message } of params.left) report(["nodes", i, "params", ...path], message)
      return
    }
    const encoded = Schema.encodeEither(kind.params)(params.right)
    if (Either.isLeft(encoded)) {
      report(["nodes", i, "params"], `node '${node.id}' (${node.kind}): params cannot be encoded: ${encoded.left.message}`)
      return
    }
    resolvedParams.set(node.id, { params: params.right, encoded: encoded.right })
  })

  // Inputs: ports, references and types.
  const nodeIndex = new Map(doc.nodes.map((n, i) => [n.id, i] as const))
  const resolvedInputs = new Map<string, Record<string, PortRef>>()
  const deps = new Map<string, Array<string>>()
  doc.nodes.forEach((node, i) => {
    const wired: Record<string, PortRef> = {}
    deps.set(node.id, [])
    const kind = registry.kinds.get(node.kind)
    if (kind === undefined) return
    const given = node.inputs ?? {}
    const ports = Object.keys(kind.inputs)
    for (const [port, ref] of Object.entries(given)) {
      const path = ["nodes", i, "inputs", port]
      const spec = (kind.inputs as InputSpecs)[port]
      if (spec === undefined) {
        report(path, `node '${node.id}' (${node.kind}): unknown input '${port}'${didYouMean(port, ports)}; inputs of ${node.kind} are: ${ports.length > 0 ? choices(ports) : "none"}`)
        continue
      }
      const { node: upstreamId, port: upstreamPort } = parseRef(ref)
      const upstreamIndex = nodeIndex.get(upstreamId)
      if (upstreamIndex === undefined) {
        report(path, `node '${node.id}': input '${port}' refers to unknown node '${upstreamId}'${didYouMean(upstreamId, nodeIndex.keys())}`)
        continue
      }
      deps.get(node.id)!.push(upstreamId)
      const upstreamKind = registry.kinds.get(doc.nodes[upstreamIndex]!.kind)
      if (upstreamKind === undefined) continue
      const outputs = Object.keys(upstreamKind.outputs)
      const outPort = upstreamPort ?? (outputs.length === 1 ? outputs[0] : undefined)
      if (outPort === undefined) {
        report(path, `node '${node.id}': input '${port}': node '${upstreamId}' has several outputs; name one as '${upstreamId}.<port>' with <port> one of ${choices(outputs)}`)
        continue
      }
      const outType = upstreamKind.outputs[outPort]
      if (outType === undefined) {
        report(path, `node '${node.id}': input '${port}': node '${upstreamId}' (${upstreamKind.kind}) has no output '${outPort}'${didYouMean(outPort, outputs)}; its outputs are: ${choices(outputs)}`)
        continue
      }
      if (!portAccepts(spec.type, outType)) {
        report(path, `node '${node.id}': input '${port}' takes ${spec.type}${spec.type === "Teacher" ? " (or a LanguageModel)" : ""} but '${upstreamId}.${outPort}' (${upstreamKind.kind}) gives ${outType}`)
        continue
      }
      wired[port] = { node: upstreamId, port: outPort }
    }
    for (const [port, spec] of Object.entries(kind.inputs as InputSpecs)) {
      if (!spec.optional && given[port] === undefined) {
        report(["nodes", i, node.inputs === undefined ? "kind" : "inputs"], `node '${node.id}' (${node.kind}): missing input '${port}' (${spec.type}${spec.description ? `: ${spec.description}` : ""})`)
      }
    }
    resolvedInputs.set(node.id, wired)
  })

  const order = topologicalOrder(deps)
  if (order._tag === "Cycle") {
    const first = nodeIndex.get(order.cycle[0]!) ?? 0
    report(["nodes", first, "inputs"], `cycle: ${order.cycle.join(" -> ")} (each node needs the next)`)
  }
  if (issues.length > 0 || order._tag === "Cycle") return fail()

  const seed = doc.seed ?? 0
  const nodes: Array<ResolvedNode> = order.order.map((id) => {
    const node = doc.nodes[nodeIndex.get(id)!]!
    const p = resolvedParams.get(id)!
    return {
      id,
      kind: registry.kinds.get(node.kind)!,
      params: p.params,
      encodedParams: p.encoded,
      inputs: resolvedInputs.get(id)!,
      seed: node.seed ?? seed
    }
  })
  return Either.right({
    name: doc.name,
    ...(doc.description !== undefined ? { description: doc.description } : {}),
    source: source.file,
    seed,
    nodes,
    doc
  })
}
