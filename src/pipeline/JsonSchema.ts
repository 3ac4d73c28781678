/**
 * The pipeline and sweep grammar as a JSON Schema (draft-07) for editors: with
 * `# yaml-language-server: $schema=<path>` at the top of a pipeline file, the YAML language server
 * completes keys, kinds, params and input ports, shows their descriptions and defaults, and flags a
 * wrong value while it is typed. It is generated from what the loader decodes with (`PipelineDoc`,
 * `SweepDoc`, and for every kind of a registry its `params` Schema, `description` and `inputs`), so it
 * says what the loader accepts; a node's params and inputs are chosen by its `kind` (draft-07
 * `if` / `then`).
 *
 * effect's JSONSchema does most of the work. Added here: the defaults of `optionalWith({ default })`
 * (read from the property's transformation, so they are never written twice), and every schema is
 * written out in place rather than as a `$ref`, because draft-07 ignores the keywords beside a `$ref`.
 * What the Schemas check in code (filters such as validation + test < 1) and what the loader checks
 * across nodes (ids, wiring, cycles) stay the loader's.
 */
import { JSONSchema, Option, Schema, SchemaAST as AST } from "effect"
import type { AnyNodeKind, InputSpecs } from "../nodes/NodeKind.js"
import type { KindRegistry } from "../nodes/Registry.js"
import { NodeDoc, PipelineDoc } from "./Pipeline.js"
import { SweepDoc } from "./SweepGrammar.js"

/** A JSON Schema, as plain JSON. */
export type JsonSchema = { [key: string]: unknown }

const DRAFT_07 = "http://json-schema.org/draft-07/schema#"

// ---------------------------------------------------------------------------------------------------
// From an Effect Schema

/** Annotations without identifiers: every schema is written out in place, never as a shared `$ref`. */
const anonymous = (annotations: AST.Annotations): AST.Annotations => {
  const { [AST.IdentifierAnnotationId]: _id, [AST.JSONIdentifierAnnotationId]: _json, ...rest } = annotations
  return rest
}

/** `from` with the property annotations of `to`'s properties of the same name. */
const withPropertyAnnotations = (from: AST.TypeLiteral, to: AST.TypeLiteral): AST.TypeLiteral => {
  const annotations = new Map(to.propertySignatures.map((ps) => [ps.name, ps.annotations] as const))
  return new AST.TypeLiteral(
    from.propertySignatures.map(
      (ps) => new AST.PropertySignature(ps.name, ps.type, ps.isOptional, ps.isReadonly, { ...annotations.get(ps.name), ...ps.annotations })
    ),
    from.indexSignatures,
    from.annotations
  )
}

/**
 * The AST as JSONSchema should see it: each `optionalWith({ default })` default as a `default`
 * annotation on the property (JSONSchema copies it to the encoded side), and no identifiers. With an
 * identifier JSONSchema writes a `$ref` to one shared definition per name, which draft-07 reads without
 * the keywords beside it (`{ $ref: Int, exclusiveMinimum: 0 }` would accept 0), and which would give
 * every use of `NonNegative` the description of its first use.
 */
const prepare = (ast: AST.AST): AST.AST => {
  switch (ast._tag) {
    case "Transformation": {
      let to = ast.to
      if (ast.transformation._tag === "TypeLiteralTransformation" && AST.isTypeLiteral(to)) {
        const defaults = new Map<PropertyKey, unknown>()
        for (const t of ast.transformation.propertySignatureTransformations) {
          const value = t.decode(Option.none())
          if (Option.isSome(value)) defaults.set(t.to, value.value)
        }
        to = new AST.TypeLiteral(
          to.propertySignatures.map((ps) =>
            defaults.has(ps.name)
              ? new AST.PropertySignature(ps.name, ps.type, ps.isOptional, ps.isReadonly, {
                ...ps.annotations,
                [AST.DefaultAnnotationId]: defaults.get(ps.name)
              })
              : ps
          ),
          to.indexSignatures,
          to.annotations
        )
      }
      // A property's annotations (its description) live on the decoded side; JSONSchema writes the
      // encoded side and copies them over only for properties with a default.
      const from = AST.isTypeLiteral(ast.from) && AST.isTypeLiteral(to) ? withPropertyAnnotations(ast.from, to) : ast.from
      return new AST.Transformation(prepare(from), to, ast.transformation, anonymous(ast.annotations))
    }
    case "Refinement":
      return new AST.Refinement(prepare(ast.from), ast.filter, anonymous(ast.annotations))
    case "Union":
      return AST.Union.make(ast.types.map(prepare), anonymous(ast.annotations))
    case "TypeLiteral":
      return new AST.TypeLiteral(
        ast.propertySignatures.map(
          (ps) => new AST.PropertySignature(ps.name, prepare(ps.type), ps.isOptional, ps.isReadonly, ps.annotations)
        ),
        ast.indexSignatures.map((is) => new AST.IndexSignature(is.parameter, prepare(is.type), is.isReadonly)),
        anonymous(ast.annotations)
      )
    case "TupleType":
      return new AST.TupleType(
        ast.elements.map((e) => new AST.OptionalType(prepare(e.type), e.isOptional, e.annotations)),
        ast.rest.map((r) => new AST.Type(prepare(r.type), r.annotations)),
        ast.isReadonly,
        anonymous(ast.annotations)
      )
    default:
      return ast
  }
}

const isObject = (u: unknown): u is JsonSchema => typeof u === "object" && u !== null && !Array.isArray(u)

/** Keywords that only describe; the rest constrain, and two constraints of one name must both hold. */
const ANNOTATIONS = new Set(["description", "default", "examples", "title", "$comment"])

/**
 * Tidies what JSONSchema gives for draft-07 readers: any `$ref` left (a class's) inlined, the keywords
 * beside it merged in, or kept apart in an `allOf` when both sides constrain the same keyword; effect's
 * `$id: "/schemas/..."` markers dropped (in draft-07 an `$id` moves the base URI), refinement titles
 * ("positive", "int") dropped in favour of descriptions, empty `required` lists dropped.
 */
const tidy = (json: unknown, definitions: Readonly<Record<string, unknown>>, expanding: ReadonlyArray<string> = []): unknown => {
  if (Array.isArray(json)) return json.map((item) => tidy(item, definitions, expanding))
  if (!isObject(json)) return json
  const { $ref, $id, title: _title, required, ...rest } = json
  const own: JsonSchema = {}
  for (const [key, value] of Object.entries(rest)) {
    // `properties` holds names, not schemas: tidy each value, keep every name.
    own[key] = key === "properties" && isObject(value)
      ? Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, tidy(schema, definitions, expanding)]))
      : key === "default" || key === "examples" || key === "enum" || key === "const"
        ? value
        : tidy(value, definitions, expanding)
  }
  if (Array.isArray(required) && required.length > 0) own.required = required
  if (typeof $id === "string" && !$id.startsWith("/schemas/")) own.$id = $id
  if (typeof $ref !== "string") return flattenAllOf(own)
  const name = decodeURIComponent($ref.replace(/^#\/definitions\//, "")).replace(/~1/g, "/").replace(/~0/g, "~")
  if (expanding.includes(name) || !(name in definitions)) {
    throw new Error(`JSON Schema: cannot inline '${$ref}' (a recursive or unknown definition); give the Schema no identifier or no recursion`)
  }
  const target = tidy(definitions[name], definitions, [...expanding, name]) as JsonSchema
  return merge(target, own)
}

/** `inner` and `outer` as one schema: merged when no constraint is on both sides, else an `allOf`. */
const merge = (inner: JsonSchema, outer: JsonSchema): JsonSchema => {
  const clash = Object.keys(outer).some((key) => !ANNOTATIONS.has(key) && key in inner)
  if (!clash) return { ...inner, ...outer }
  const annotations = Object.fromEntries(Object.entries(outer).filter(([key]) => ANNOTATIONS.has(key)))
  const constraints = Object.fromEntries(Object.entries(outer).filter(([key]) => !ANNOTATIONS.has(key)))
  return { allOf: [inner, constraints], ...annotations }
}

/** `{ allOf: [X], default: 1 }` (effect's way of annotating a `$ref`) as X with the default. */
const flattenAllOf = (json: JsonSchema): JsonSchema => {
  const { allOf, ...rest } = json
  if (!Array.isArray(allOf) || allOf.length !== 1 || !isObject(allOf[0])) return json
  const merged = merge(allOf[0], rest)
  return merged.allOf === undefined ? merged : json
}

/** The JSON Schema of what a Schema decodes from (its encoded side: what YAML gives), with defaults. */
export const jsonSchemaOf = (schema: Schema.Schema.Any | Schema.Schema<any, any, never>): JsonSchema => {
  const definitions: Record<string, JSONSchema.JsonSchema7> = {}
  const json = JSONSchema.fromAST(prepare(schema.ast), { definitions, definitionPath: "#/definitions/", target: "jsonSchema7" })
  return tidy(json, definitions) as JsonSchema
}

/** Describes the properties of the grammar Schemas, which carry their docs as comments. */
const describeProperties = (json: JsonSchema, descriptions: Readonly<Record<string, string>>): JsonSchema => {
  const properties = isObject(json.properties) ? json.properties : {}
  return {
    ...json,
    properties: Object.fromEntries(
      Object.entries(properties).map(([name, schema]) => [
        name,
        isObject(schema) && descriptions[name] !== undefined
          ? { ...schema, description: descriptions[name] }
          : schema
      ])
    )
  }
}

// ---------------------------------------------------------------------------------------------------
// Kinds

/** What the schema needs to know about a kind: built-in, plugin, or macro. */
interface KindEntry {
  readonly name: string
  readonly description: string
  readonly params: JsonSchema
  /** Whether `params:` may be left out (the kind decodes `{}`). */
  readonly paramsOptional: boolean
  readonly inputs: InputSpecs
  readonly outputs: Readonly<Record<string, string>>
}

const paramsOptional = (kind: AnyNodeKind): boolean => Schema.decodeUnknownOption(kind.params)({})._tag === "Some"

const kindEntry = (kind: AnyNodeKind): KindEntry => ({
  name: kind.kind,
  description: kind.description,
  params: jsonSchemaOf(kind.params),
  paramsOptional: paramsOptional(kind),
  inputs: kind.inputs,
  outputs: kind.outputs
})

const MAX_GENERATIONS = 16

/**
 * `born_again` (pipeline/Macros.ts) has no kind in the registry: its params are train's plus
 * `generations` and the params of the generate, evaluate and ensemble nodes it expands into.
 */
const bornAgainEntry = (kinds: ReadonlyMap<string, AnyNodeKind>): KindEntry | undefined => {
  const [train, generate, evaluate, ensemble] = ["train", "generate", "evaluate", "ensemble"].map((k) => kinds.get(k))
  if (train === undefined || generate === undefined || evaluate === undefined || ensemble === undefined) return undefined
  const trainParams = jsonSchemaOf(train.params)
  const ensembleParams = jsonSchemaOf(ensemble.params)
  const mode = isObject(ensembleParams.properties) ? ensembleParams.properties.mode : undefined
  return {
    name: "born_again",
    description:
      "Born-again networks (Furlanello et al. 2018), a macro: trains `generations` students of one architecture, " +
      "each distilled from the previous one, with their generate, evaluate and ensemble nodes",
    params: {
      ...trainParams,
      properties: {
        generations: { type: "integer", minimum: 1, maximum: MAX_GENERATIONS, description: `How many generations to train (1 to ${MAX_GENERATIONS})` },
        ...(isObject(trainParams.properties) ? trainParams.properties : {}),
        generate: { ...jsonSchemaOf(generate.params), description: "Params of the generate nodes that label each generation's transfer set" },
        evaluate: { ...jsonSchemaOf(evaluate.params), description: "Params of the evaluate nodes of every generation" },
        ensemble: {
          type: "object",
          properties: mode === undefined ? {} : { mode },
          additionalProperties: false,
          description: "How the generations are ensembled (they get equal weights)"
        }
      },
      required: ["generations", ...(Array.isArray(trainParams.required) ? trainParams.required : [])]
    },
    paramsOptional: false,
    inputs: {
      data: { type: "Dataset", description: "the dataset every generation trains on" },
      teacher: { type: "Model", optional: true, description: "a model that generation 1 is distilled from (hard labels without it)" }
    },
    outputs: { model: "Model" }
  }
}

const describePorts = (ports: Readonly<Record<string, string>>): string =>
  Object.entries(ports).map(([port, type]) => `${port} (${type})`).join(", ")

const kindDescription = (entry: KindEntry): string => {
  const inputs = Object.entries(entry.inputs).map(([port, spec]) => `${port} (${spec.type}${spec.optional ? ", optional" : ""})`)
  return `${entry.description}. Inputs: ${inputs.length > 0 ? inputs.join(", ") : "none"}. Outputs: ${describePorts(entry.outputs)}.`
}

const inputsSchema = (entry: KindEntry): JsonSchema => {
  const ports = Object.entries(entry.inputs)
  const required = ports.filter(([, spec]) => spec.optional !== true).map(([port]) => port)
  return {
    type: "object",
    description: `Where the inputs of ${entry.name} come from: each port names a node ("teacher") or one of its outputs ("teacher.model")`,
    properties: Object.fromEntries(
      ports.map(([port, spec]) => [
        port,
        { type: "string", description: `${spec.type}${spec.optional === true ? ", optional" : ""}${spec.description ? `: ${spec.description}` : ""}` }
      ])
    ),
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false
  }
}

const nodeCase = (entry: KindEntry): JsonSchema => {
  const required = [
    ...(entry.paramsOptional ? [] : ["params"]),
    ...(Object.values(entry.inputs).some((spec) => spec.optional !== true) ? ["inputs"] : [])
  ]
  return {
    if: { properties: { kind: { const: entry.name } }, required: ["kind"] },
    then: {
      properties: {
        params: { $ref: `#/definitions/${entry.name}.params` },
        inputs: { $ref: `#/definitions/${entry.name}.inputs` }
      },
      ...(required.length > 0 ? { required } : {})
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The document

const pipelineDescriptions: Readonly<Record<string, string>> = {
  name: "The experiment's name, recorded with every run",
  description: "What the pipeline is for",
  seed: "The seed of every node without its own `seed:` (0 when absent); a sweep trial's seed replaces it",
  plugins: "Plugin modules that add node kinds: paths relative to this file, or package names",
  nodes: "The nodes of the DAG, in any order: each has an id, a kind, params, and inputs that name other nodes' outputs",
  sweep: "Turns the pipeline into trials for `distillery sweep`: grid, zip and random param values, times seeds"
}

const nodeDescriptions: Readonly<Record<string, string>> = {
  id: "The node's id, unique in the pipeline: a letter or '_', then letters, digits, '_' or '-'",
  kind: "What the node computes",
  params: "The kind's params; defaults fill what is left out",
  inputs: "Input port -> the node (\"teacher\") or node output (\"teacher.model\") it reads",
  seed: "This node's seed instead of the pipeline's (e.g. to keep a split or a teacher fixed across sweep trials)",
  description: "What the node is for"
}

const sweepDescriptions: Readonly<Record<string, string>> = {
  grid: "Every combination of these values (first path varies slowest); keys are <node>.params.<path>, e.g. student.params.objective.temperature",
  zip: "Lists in lock-step: the i-th values go together (equal lengths); keys are <node>.params.<path>",
  random: "n seeded samples of each param, from a list or a range { min, max, log, int }",
  seeds: "Each point at seeds: N gives the pipeline seed + 0..N-1, or a list of seeds",
  baseline: "A node (or its evaluate node) whose metrics paired differences subtract"
}

const randomDescriptions: Readonly<Record<string, string>> = {
  n: "How many samples",
  seed: "The sampling seed (default: the pipeline's)",
  params: "<node>.params.<path> -> a list to draw from, or a range { min, max, log, int }"
}

/** `<node>.params.<path>`: what sweep sections are keyed by. */
const PARAM_PATH = { type: "string", pattern: "^[^.]+\\.params\\.[^.]+(\\.[^.]+)*$" }

const sweepSchema = (): JsonSchema => {
  const json = describeProperties(jsonSchemaOf(SweepDoc), sweepDescriptions)
  const properties = json.properties as Record<string, JsonSchema>
  const keyed = (section: JsonSchema): JsonSchema => ({ ...section, propertyNames: PARAM_PATH })
  const random = describeProperties(properties.random!, randomDescriptions)
  return {
    ...json,
    properties: {
      ...properties,
      grid: keyed(properties.grid!),
      zip: keyed(properties.zip!),
      random: { ...random, properties: { ...(random.properties as JsonSchema), params: keyed((random.properties as Record<string, JsonSchema>).params!) } }
    }
  }
}

/** The JSON Schema of a pipeline file whose nodes may use `registry`'s kinds (and the macros). */
export const pipelineJsonSchema = (registry: KindRegistry): JsonSchema => {
  const kinds = [...registry.kinds.values()].map(kindEntry)
  const bornAgain = bornAgainEntry(registry.kinds)
  const entries = bornAgain === undefined ? kinds : [...kinds, bornAgain]
  const node = describeProperties(jsonSchemaOf(NodeDoc), nodeDescriptions)
  const document = describeProperties(jsonSchemaOf(PipelineDoc), pipelineDescriptions)
  const documentProperties = document.properties as Record<string, JsonSchema>
  return {
    $schema: DRAFT_07,
    title: "Distillery pipeline",
    description: "A Distillery pipeline: nodes (dataset, teacher, generate, filter, train, evaluate ...) wired into a DAG, optionally swept",
    ...document,
    properties: {
      ...documentProperties,
      nodes: { ...documentProperties.nodes, items: { $ref: "#/definitions/node" } },
      sweep: { ...sweepSchema(), description: pipelineDescriptions.sweep }
    },
    definitions: {
      node: {
        ...node,
        properties: {
          ...(node.properties as JsonSchema),
          kind: {
            type: "string",
            description: nodeDescriptions.kind,
            anyOf: entries.map((entry) => ({ const: entry.name, description: kindDescription(entry) }))
          }
        },
        allOf: entries.map(nodeCase)
      },
      ...Object.fromEntries(
        entries.flatMap((entry) => [
          [`${entry.name}.params`, { description: `Params of ${entry.name}`, ...entry.params }],
          [`${entry.name}.inputs`, inputsSchema(entry)]
        ])
      )
    }
  }
}

/** The schema as the committed file holds it: two-space JSON and a final newline. */
export const renderJsonSchema = (schema: JsonSchema): string => `${JSON.stringify(schema, null, 2)}\n`
