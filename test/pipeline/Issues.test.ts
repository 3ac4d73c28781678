import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, ParseResult, Schema } from "effect"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import type { SchemaIssue, Wording } from "../../src/pipeline/Issues.js"
import { decodeChecked, decodeOptions, describeSchema, formatSchemaIssue, schemaIssues } from "../../src/pipeline/Issues.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"

const positive = Schema.Number.pipe(Schema.positive())

/** A params schema shaped like a real kind's: a discriminated union, defaults, refinements, literals. */
const Model = Schema.Union(
  Schema.Struct({ type: Schema.Literal("mlp"), hidden: Schema.Array(Schema.Int.pipe(Schema.positive())) }),
  Schema.Struct({ type: Schema.Literal("cnn"), channels: Schema.Array(Schema.Int) })
)
const Params = Schema.Struct({
  model: Model,
  epochs: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 10 }),
  temperature: Schema.optional(positive),
  divergence: Schema.optionalWith(Schema.Literal("forward_kl", "reverse_kl", "jsd"), { default: () => "forward_kl" as const }),
  values: Schema.optional(Schema.Union(Schema.NonEmptyArray(Schema.Number), Schema.Struct({ min: Schema.Number, max: Schema.Number })))
})

const issuesOf = <A, I>(schema: Schema.Schema<A, I, never>, value: unknown): ReadonlyArray<SchemaIssue> => {
  const decoded = Schema.decodeUnknownEither(schema, decodeOptions)(value)
  if (Either.isRight(decoded)) return assert.fail("expected the value to be rejected")
  return schemaIssues(decoded.left)
}

const messagesOf = <A, I>(schema: Schema.Schema<A, I, never>, value: unknown, wording: Wording = { noun: "param" }): ReadonlyArray<string> => {
  const decoded = decodeChecked(schema, value, wording)
  if (Either.isRight(decoded)) return assert.fail("expected the value to be rejected")
  return decoded.left.map((m) => `${m.path.join(".")}: ${m.message}`)
}

const mlp = { type: "mlp", hidden: [4] }

describe("schema issues", () => {
  it("Type: a value of the wrong type names what was expected and what was given", () => {
    assert.deepStrictEqual(issuesOf(Schema.Struct({ a: Schema.Number }), { a: "high" }), [
      { _tag: "WrongType", path: ["a"], actual: "high", expected: "a number" }
    ])
    assert.deepStrictEqual(messagesOf(Schema.Struct({ a: Schema.Number }), { a: "high" }), ["a: param 'a': expected a number, got \"high\""])
  })

  it("Pointer + Composite: a nested param given a string is reported at its full path", () => {
    assert.deepStrictEqual(messagesOf(Params, { model: { type: "mlp", hidden: "wide" } }), [
      "model.hidden: param 'model.hidden': expected a list (items: a positive number), got \"wide\""
    ])
  })

  it("Unexpected: an unknown key inside a nested struct gets did-you-mean and the keys valid there", () => {
    assert.deepStrictEqual(issuesOf(Params, { model: { type: "mlp", hiden: [4] } })[0], {
      _tag: "UnknownKey",
      path: ["model", "hiden"],
      valid: ["type", "hidden"]
    })
    assert.include(
      messagesOf(Params, { model: { type: "mlp", hiden: [4] } }),
      "model.hiden: unknown param 'model.hiden' (did you mean 'hidden'?); valid params here: 'type' or 'hidden'"
    )
    // At the top level, keys the caller adds (a macro's own params) count as valid too.
    assert.deepStrictEqual(messagesOf(Params, { model: mlp, generatons: 2 }, { noun: "param", extraKeys: ["generations"] }), [
      "generatons: unknown param 'generatons' (did you mean 'generations'?); valid params here: 'model', 'epochs', 'temperature', 'divergence', 'values' or 'generations'"
    ])
  })

  it("Missing: a missing key says what it takes", () => {
    assert.deepStrictEqual(issuesOf(Params, {}), [{ _tag: "MissingKey", path: ["model"], expected: "a map" }])
    assert.deepStrictEqual(messagesOf(Params, { model: { type: "mlp" } }), [
      "model.hidden: missing required param 'model.hidden', which takes a list (items: a positive number)"
    ])
    assert.deepStrictEqual(messagesOf(Schema.Struct({ xs: Schema.NonEmptyArray(Schema.String) }), { xs: [] }), ["xs.0: param 'xs' needs at least 1 item"])
  })

  it("Refinement: the filter that failed describes itself (From and Predicate)", () => {
    assert.deepStrictEqual(messagesOf(Params, { model: mlp, temperature: -2, epochs: 1.5 }), [
      "epochs: param 'epochs': expected an integer, got 1.5",
      "temperature: param 'temperature': expected a positive number, got -2"
    ])
    const distinct = Schema.Array(Schema.String).pipe(Schema.filter((xs) => new Set(xs).size === xs.length || "names must be distinct"))
    assert.deepStrictEqual(messagesOf(Schema.Struct({ names: distinct }), { names: ["a", "a"] }), ["names: param 'names': names must be distinct"])
  })

  it("Composite over a union: literal members merge into one list of choices, the optional `undefined` is dropped", () => {
    assert.deepStrictEqual(issuesOf(Params, { model: mlp, divergence: "backward_kl" }), [
      { _tag: "NotOneOf", path: ["divergence"], actual: "backward_kl", choices: ["forward_kl", "reverse_kl", "jsd"] }
    ])
    assert.deepStrictEqual(messagesOf(Params, { model: { type: "mlpx", hidden: [4] } }), [
      "model.type: param 'model.type': \"mlpx\" is not one of 'mlp' or 'cnn' (did you mean 'mlp'?)"
    ])
    // No member takes the value's shape: one line naming every shape.
    assert.deepStrictEqual(messagesOf(Params, { model: mlp, values: "x" }), [
      "values: param 'values': expected a non-empty list (items: a number) or a map, got \"x\""
    ])
    // A member the value got into wins over those whose shape it does not have.
    assert.deepStrictEqual(messagesOf(Params, { model: mlp, values: { min: 0 } }), ["values.max: missing required param 'values.max', which takes a number"])
  })

  it("Transformation: a failed transformation keeps its own message", () => {
    const Csv = Schema.transformOrFail(Schema.String, Schema.Array(Schema.String), {
      strict: true,
      decode: (s, _, ast) => (s.includes(",") ? ParseResult.succeed(s.split(",")) : ParseResult.fail(new ParseResult.Type(ast, s, "write names separated by commas"))),
      encode: (xs) => ParseResult.succeed(xs.join(","))
    })
    assert.deepStrictEqual(messagesOf(Schema.Struct({ names: Csv }), { names: "a" }), ["names: param 'names': write names separated by commas"])
  })

  it("Forbidden: a check that cannot run at load time is reported, not thrown", () => {
    const Slow = Schema.transformOrFail(Schema.String, Schema.String, {
      strict: true,
      decode: (s) => Effect.delay(Effect.succeed(s), "1 millis"),
      encode: ParseResult.succeed
    })
    const [issue] = issuesOf(Schema.Struct({ s: Slow }), { s: "x" })
    assert.strictEqual(issue?._tag, "Invalid")
    assert.deepStrictEqual(issue?.path, ["s"])
  })

  it("words the issue for its caller: noun, who, name prefix and the whole value", () => {
    const wrong: SchemaIssue = { _tag: "WrongType", path: ["topk"], actual: 0, expected: "a positive number" }
    assert.strictEqual(
      formatSchemaIssue(wrong, { noun: "param", who: "node 'ban' (born_again)", prefix: ["generate"] }),
      "node 'ban' (born_again): param 'generate.topk': expected a positive number, got 0"
    )
    const whole: SchemaIssue = { _tag: "WrongType", path: [], actual: 3, expected: "a map" }
    assert.strictEqual(formatSchemaIssue(whole, { noun: "param" }), "params: expected a map, got 3")
    assert.strictEqual(formatSchemaIssue(whole, { noun: "key", who: "sweep", whole: "" }), "sweep: expected a map, got 3")
    assert.strictEqual(formatSchemaIssue({ ...whole, path: ["nodes", 0, "params"] }, { noun: "key" }), "key 'nodes[0].params': expected a map, got 3")
  })

  it("describes schemas in a YAML reader's words", () => {
    assert.strictEqual(describeSchema(Schema.Literal("best", "last").ast), "one of 'best' or 'last'")
    assert.strictEqual(describeSchema(Schema.UndefinedOr(Schema.Boolean).ast), "a boolean")
    assert.strictEqual(describeSchema(Model.ast), "a map")
  })

  it("places a nested param's issue at its YAML line and column", () => {
    const text = `name: t
nodes:
  - id: d
    kind: dataset
    params: { source: two_moons }
  - id: s
    kind: train
    inputs: { data: d }
    params:
      model: { type: mlp, hidden: wide, activaton: relu }
`
    const result = Either.flatMap(parseYaml("p.yaml", text), (p) => resolvePipeline(p.value, builtinRegistry, p.source))
    if (Either.isRight(result)) return assert.fail("expected the pipeline to be rejected")
    assert.include(result.left.message, "p.yaml:10:27: node 's' (train): param 'model.hidden': expected a list")
    assert.include(result.left.message, "p.yaml:10:41: node 's' (train): unknown param 'model.activaton' (did you mean 'activation'?); valid params here:")
  })
})
