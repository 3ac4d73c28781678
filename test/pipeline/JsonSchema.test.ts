/**
 * The JSON Schema editors read: the committed copy is what the generator gives, every pipeline in
 * pipelines/ points at it and is valid under it, and it rejects what the loader rejects (an ill-typed
 * param, an unknown kind, a missing input). Checked with a small draft-07 validator below that fails on
 * any keyword it does not implement, so the schema cannot hold a constraint the test ignores.
 */
import { assert, describe, it } from "@effect/vitest"
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Option } from "effect"
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { parse } from "yaml"
import { pipelineRegistry, schema as schemaCommand } from "../../src/cli/schema.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import type { JsonSchema } from "../../src/pipeline/JsonSchema.js"
import { pipelineJsonSchema, renderJsonSchema } from "../../src/pipeline/JsonSchema.js"
import { noSourceMap } from "../../src/pipeline/Pipeline.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"

// ---------------------------------------------------------------------------------------------------
// A draft-07 validator for the keywords the generated schema uses

const ANNOTATIONS = new Set(["$schema", "title", "description", "default", "examples", "definitions", "$comment", "then", "else"])

const typeOf = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "array" : Number.isInteger(value) ? "integer" : typeof value

const hasType = (value: unknown, type: string): boolean =>
  type === "number" ? typeof value === "number" : type === "integer" ? Number.isInteger(value) : typeOf(value) === type

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Every violation of `schema` by `value`, as "path: what"; [] when valid. */
const validate = (root: JsonSchema, schema: unknown, value: unknown, path = "$"): Array<string> => {
  if (schema === true || (isObject(schema) && Object.keys(schema).length === 0)) return []
  if (schema === false) return [`${path}: not allowed`]
  if (!isObject(schema)) throw new Error(`not a schema at ${path}: ${JSON.stringify(schema)}`)
  const errors: Array<string> = []
  const sub = (s: unknown, v: unknown, p: string) => validate(root, s, v, p)
  for (const [keyword, arg] of Object.entries(schema)) {
    switch (keyword) {
      case "$ref": {
        const target = (arg as string).replace(/^#\//, "").split("/").reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], root)
        errors.push(...sub(target, value, path))
        break
      }
      case "type": {
        const types = Array.isArray(arg) ? arg : [arg]
        if (!types.some((t) => hasType(value, t as string))) errors.push(`${path}: expected ${types.join(" or ")}, got ${typeOf(value)} ${JSON.stringify(value)}`)
        break
      }
      case "enum":
        if (!(arg as Array<unknown>).some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(arg)}`)
        break
      case "const":
        if (JSON.stringify(arg) !== JSON.stringify(value)) errors.push(`${path}: expected ${JSON.stringify(arg)}`)
        break
      case "minimum":
        if (typeof value === "number" && value < (arg as number)) errors.push(`${path}: ${value} < ${arg}`)
        break
      case "maximum":
        if (typeof value === "number" && value > (arg as number)) errors.push(`${path}: ${value} > ${arg}`)
        break
      case "exclusiveMinimum":
        if (typeof value === "number" && value <= (arg as number)) errors.push(`${path}: ${value} <= ${arg}`)
        break
      case "exclusiveMaximum":
        if (typeof value === "number" && value >= (arg as number)) errors.push(`${path}: ${value} >= ${arg}`)
        break
      case "minLength":
        if (typeof value === "string" && value.length < (arg as number)) errors.push(`${path}: shorter than ${arg}`)
        break
      case "pattern":
        if (typeof value === "string" && !new RegExp(arg as string, "u").test(value)) errors.push(`${path}: does not match ${arg}`)
        break
      case "minItems":
        if (Array.isArray(value) && value.length < (arg as number)) errors.push(`${path}: fewer than ${arg} items`)
        break
      case "items":
        if (Array.isArray(value)) {
          if (Array.isArray(arg)) {
            arg.forEach((s, i) => i < value.length && errors.push(...sub(s, value[i], `${path}[${i}]`)))
            if (schema.additionalItems !== undefined) {
              value.slice(arg.length).forEach((v, i) => errors.push(...sub(schema.additionalItems, v, `${path}[${arg.length + i}]`)))
            }
          } else value.forEach((v, i) => errors.push(...sub(arg, v, `${path}[${i}]`)))
        }
        break
      case "additionalItems":
        break // with `items`
      case "required":
        if (isObject(value)) for (const key of arg as Array<string>) if (!(key in value)) errors.push(`${path}: missing '${key}'`)
        break
      case "properties":
        if (isObject(value)) {
          for (const [key, s] of Object.entries(arg as Record<string, unknown>)) {
            if (key in value) errors.push(...sub(s, value[key], `${path}.${key}`))
          }
        }
        break
      case "additionalProperties":
        if (isObject(value)) {
          const known = Object.keys((schema.properties ?? {}) as object)
          for (const [key, v] of Object.entries(value)) {
            if (!known.includes(key)) errors.push(...(arg === false ? [`${path}: unknown key '${key}'`] : sub(arg, v, `${path}.${key}`)))
          }
        }
        break
      case "propertyNames":
        if (isObject(value)) for (const key of Object.keys(value)) errors.push(...sub(arg, key, `${path}{${key}}`))
        break
      case "allOf":
        for (const s of arg as Array<unknown>) errors.push(...sub(s, value, path))
        break
      case "anyOf": {
        const each = (arg as Array<unknown>).map((s) => sub(s, value, path))
        if (each.every((e) => e.length > 0)) errors.push(`${path}: matches no alternative (${each.map((e) => e[0]).join("; ")})`)
        break
      }
      case "if":
        if (sub(arg, value, path).length === 0) {
          if (schema.then !== undefined) errors.push(...sub(schema.then, value, path))
        } else if (schema.else !== undefined) errors.push(...sub(schema.else, value, path))
        break
      default:
        if (!ANNOTATIONS.has(keyword)) throw new Error(`the test's validator does not implement '${keyword}' (at ${path})`)
    }
  }
  return errors
}

// ---------------------------------------------------------------------------------------------------

const generated = pipelineJsonSchema(builtinRegistry)
const check = (doc: unknown) => validate(generated, generated, doc)
const pipelineFiles = readdirSync("pipelines").filter((f) => f.endsWith(".yaml")).sort()
const twoMoons = () => parse(readFileSync("pipelines/two-moons-kd.yaml", "utf8")) as {
  nodes: Array<{ id: string; kind: string; params?: Record<string, unknown>; inputs?: Record<string, string> }>
}
const loaderAccepts = (doc: unknown) => Either.isRight(resolvePipeline(doc, builtinRegistry, noSourceMap("<test>")))

describe("pipeline JSON Schema", () => {
  it("the committed pipeline.schema.json is up to date", () => {
    assert.strictEqual(
      readFileSync("pipeline.schema.json", "utf8"),
      renderJsonSchema(generated),
      "pipeline.schema.json is out of date: run `npm run distillery -- schema --out pipeline.schema.json` and commit it"
    )
  })

  it("is draft-07 with a node case per kind, params' descriptions and defaults, and ports", () => {
    assert.strictEqual(generated.$schema, "http://json-schema.org/draft-07/schema#")
    const definitions = generated.definitions as Record<string, JsonSchema>
    const kinds = ((definitions.node!.properties as Record<string, JsonSchema>).kind!.anyOf as Array<{ const: string }>).map((k) => k.const)
    assert.deepStrictEqual(kinds, [...builtinRegistry.kinds.keys(), "born_again"])
    const train = definitions["train.params"]!.properties as Record<string, JsonSchema>
    assert.strictEqual(train.epochs!.default, 10)
    assert.strictEqual(train.epochs!.type, "integer")
    assert.isString(train.epochs!.description)
    assert.deepInclude(train.optimizer!.default as object, { type: "adam", learningRate: 0.001 })
    const objective = train.objective!.properties as Record<string, JsonSchema>
    assert.strictEqual(objective.temperature!.default, 1)
    assert.strictEqual(objective.temperature!.exclusiveMinimum, 0)
    const inputs = definitions["train.inputs"]!
    assert.deepStrictEqual(inputs.required, ["data"])
    assert.match(String((inputs.properties as Record<string, JsonSchema>).teacher!.description), /^SoftLabels, optional: /)
    // No `$ref` with sibling keywords: draft-07 ignores them.
    const refsWithSiblings = JSON.stringify(generated).match(/\{"\$ref":"[^"]+",/g)
    assert.isNull(refsWithSiblings)
  })

  it("every pipeline in pipelines/ points at it and is valid under it", () => {
    assert.isAbove(pipelineFiles.length, 5)
    for (const file of pipelineFiles) {
      const text = readFileSync(join("pipelines", file), "utf8")
      assert.strictEqual(text.split("\n")[0], "# yaml-language-server: $schema=../pipeline.schema.json", file)
      // Merge keys (<<: *anchor) resolved as the loader and yaml-language-server resolve them.
      assert.deepStrictEqual(check(parse(text, { merge: true })), [], file)
    }
  })

  it("rejects what the loader rejects: an ill-typed param, an unknown kind, unknown keys, a missing input", () => {
    const cases: Record<string, (doc: ReturnType<typeof twoMoons>) => void> = {
      "epochs: ten": (doc) => (doc.nodes[1]!.params!.epochs = "ten"),
      "unknown kind": (doc) => (doc.nodes[2]!.kind = "generat"),
      "unknown param": (doc) => (doc.nodes[1]!.params!.epoch = 3),
      "bad enum": (doc) => (doc.nodes[4]!.params!.objective = { divergence: "forward-kl" }),
      "out of range": (doc) => (doc.nodes[3]!.params!.min = 1.5),
      "unknown input": (doc) => (doc.nodes[2]!.inputs!.teacher = "teacher"),
      "missing input": (doc) => delete doc.nodes[2]!.inputs!.data,
      "filter without by": (doc) => (doc.nodes[3]!.params = { min: 0.5 })
    }
    assert.deepStrictEqual(check(twoMoons()), [])
    for (const [name, mutate] of Object.entries(cases)) {
      const doc = twoMoons()
      mutate(doc)
      assert.isNotEmpty(check(doc), `the schema accepts ${name}`)
      assert.isFalse(loaderAccepts(doc), `the loader accepts ${name}`)
    }
    const ten = twoMoons()
    ten.nodes[1]!.params!.epochs = "ten"
    assert.include(check(ten).join("\n"), `$.nodes[1].params.epochs: expected integer, got string "ten"`)
  })

  it("with a pipeline, includes the kinds its plugins load", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "distillery-schema-"))
      const file = join(dir, "noisy.yaml")
      writeFileSync(file, `name: noisy\nplugins: [${resolve("plugins/label-noise/index.ts")}]\nnodes: []\n`)
      const registry = yield* pipelineRegistry(file)
      const withPlugin = pipelineJsonSchema(registry)
      const definitions = withPlugin.definitions as Record<string, JsonSchema>
      const fraction = (definitions["label_noise.params"]!.properties as Record<string, JsonSchema>).fraction!
      assert.strictEqual(fraction.maximum, 1)
      const doc = { name: "noisy", nodes: [{ id: "d", kind: "dataset", params: { source: "two_moons" } }, { id: "n", kind: "label_noise", inputs: { data: "d" }, params: { fraction: 0.2 } }] }
      assert.deepStrictEqual(validate(withPlugin, withPlugin, doc), [])
      assert.isNotEmpty(check(doc), "the built-in schema has no label_noise")
      assert.isNotEmpty(validate(withPlugin, withPlugin, { ...doc, nodes: [doc.nodes[0], { ...doc.nodes[1], params: { fraction: 2 } }] }))

      // The verb writes the same schema.
      const out = join(dir, "schema.json")
      yield* schemaCommand.handler({ pipeline: Option.some(file), out: Option.some(out) })
      assert.strictEqual(readFileSync(out, "utf8"), renderJsonSchema(withPlugin))
    }).pipe(Effect.provide(NodeContext.layer), Effect.runPromise))
})
