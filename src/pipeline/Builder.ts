/**
 * Pipelines as TypeScript: `pipeline({ name }).add(id, Kind, { params, inputs })` returns typed
 * references to the node's outputs, so wiring a Model into a Dataset input is a compile error. `build`
 * produces the same document a YAML file would and resolves it through the same checks, so the same
 * experiment gets the same cache keys either way. `sweep(spec)` adds a `sweep:` section (the YAML
 * grammar of pipeline/SweepGrammar.ts) and `buildSweep` expands it into trials.
 */
import { Either } from "effect"
import type { PortType } from "../domain/Artifact.js"
import type { InputSpecs, NodeKind, OutputSpecs } from "../nodes/NodeKind.js"
import type { KindRegistry, RegistryError } from "../nodes/Registry.js"
import { register } from "../nodes/Registry.js"
import type { NodeDoc, Pipeline, PipelineDoc, PipelineError } from "./Pipeline.js"
import { noSourceMap } from "./Pipeline.js"
import type { Sweep, SweepDoc } from "./SweepGrammar.js"
import { resolveSweep } from "./SweepGrammar.js"
import { resolvePipeline } from "./Validate.js"

/** A typed reference to one output port of a node. */
export interface OutputRef<T extends PortType> {
  readonly node: string
  readonly port: string
  readonly type: T
}

export type OutputRefs<O extends OutputSpecs> = { readonly [K in keyof O]: OutputRef<O[K]> }

type RequiredKeys<I extends InputSpecs> = { [K in keyof I]: I[K]["optional"] extends true ? never : K }[keyof I]
type OptionalKeys<I extends InputSpecs> = Exclude<keyof I, RequiredKeys<I>>

/** The output types an input of type T takes (domain/Artifact.ts `portAccepts`). */
type Accepted<T extends PortType> = T extends "Teacher" ? "Teacher" | "LanguageModel" : T

export type InputRefs<I extends InputSpecs> = { readonly [K in RequiredKeys<I>]: OutputRef<Accepted<I[K]["type"]>> } & {
  readonly [K in OptionalKeys<I>]?: OutputRef<Accepted<I[K]["type"]>>
}

export interface NodeOptions<I extends InputSpecs, E> {
  /** Params as they would be written in YAML (defaults may be left out). */
  readonly params?: E
  readonly inputs?: InputRefs<I>
  readonly seed?: number
}

export interface PipelineBuilder {
  readonly add: <P, I extends InputSpecs, O extends OutputSpecs, E>(
    id: string,
    kind: NodeKind<P, I, O, E>,
    options?: NodeOptions<I, E>
  ) => OutputRefs<O>
  /**
   * Sets the sweep (as in YAML: `grid`, `zip`, `random`, `seeds`, `baseline`, with param paths
   * `<node>.params.<path>`); returns the builder.
   */
  readonly sweep: (spec: typeof SweepDoc.Encoded) => PipelineBuilder
  /** The plain pipeline document (what the YAML form parses to). */
  readonly doc: () => PipelineDoc
  /** Resolves the pipeline against the registry plus every kind used here, with the YAML loader's checks. */
  readonly build: (registry: KindRegistry) => Either.Either<Pipeline, PipelineError | RegistryError>
  /** Expands the sweep into trials, each resolved with the same checks as `build`. */
  readonly buildSweep: (registry: KindRegistry) => Either.Either<Sweep, PipelineError | RegistryError>
}

export const pipeline = (options: { readonly name: string; readonly seed?: number; readonly description?: string }): PipelineBuilder => {
  const nodes: Array<NodeDoc> = []
  const kinds = new Map<string, NodeKind<any, any, any, any>>()
  let sweep: unknown = undefined
  const doc = (): PipelineDoc => ({
    name: options.name,
    ...(options.description !== undefined ? { description: options.description } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    nodes: [...nodes],
    ...(sweep !== undefined ? { sweep } : {})
  })
  const withKinds = (registry: KindRegistry) =>
    register(registry, `pipeline '${options.name}'`, [...kinds.values()].filter((k) => registry.kinds.get(k.kind) !== k))
  const builder: PipelineBuilder = {
    add: (id, kind, nodeOptions = {}) => {
      kinds.set(kind.kind, kind)
      const inputs = Object.fromEntries(
        Object.entries((nodeOptions.inputs ?? {}) as Record<string, OutputRef<PortType> | undefined>).flatMap(([port, ref]) =>
          ref === undefined ? [] : [[port, `${ref.node}.${ref.port}`]]
        )
      )
      nodes.push({
        id,
        kind: kind.kind,
        ...(nodeOptions.params !== undefined ? { params: nodeOptions.params as Record<string, unknown> } : {}),
        ...(Object.keys(inputs).length > 0 ? { inputs } : {}),
        ...(nodeOptions.seed !== undefined ? { seed: nodeOptions.seed } : {})
      })
      return Object.fromEntries(Object.entries(kind.outputs).map(([port, type]) => [port, { node: id, port, type }])) as never
    },
    sweep: (spec) => {
      sweep = spec
      return builder
    },
    doc,
    build: (registry) => {
      const all = withKinds(registry)
      if (Either.isLeft(all)) return Either.left(all.left)
      return resolvePipeline(doc(), all.right, noSourceMap(`<code:${options.name}>`))
    },
    buildSweep: (registry) => {
      const all = withKinds(registry)
      if (Either.isLeft(all)) return Either.left(all.left)
      return resolveSweep(doc(), all.right, noSourceMap(`<code:${options.name}>`))
    }
  }
  return builder
}
