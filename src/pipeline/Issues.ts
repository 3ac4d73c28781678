/**
 * The one place load-time Schema failures become messages. `schemaIssues` walks Effect's ParseIssue
 * tree (Pointer, Composite, Refinement, Transformation, Type, Missing, Unexpected, Forbidden) into
 * flat issues, each at the path of the value it is about: an unknown key with the keys valid there, a
 * missing key with what it takes, a value outside a set of literals with the choices, a value of the
 * wrong type with what was expected and what was given. A union is reported once: the optional
 * `undefined` member is dropped, literal members are merged into one list of choices, and members the
 * value got further into win over members whose shape it does not even have. `decodeChecked` decodes
 * and renders the issues the way every load-time check words them; callers place them in the YAML
 * (Pipeline.ts `issueAt`).
 */
import { Either, Option, ParseResult, Schema, SchemaAST } from "effect"
import { choices, didYouMean } from "../domain/Suggest.js"

type Path = ReadonlyArray<string | number>

/** One problem of a decoded value, at the path (inside that value) it is about. */
export type SchemaIssue =
  | { readonly _tag: "UnknownKey"; readonly path: Path; readonly valid: ReadonlyArray<string> }
  | { readonly _tag: "MissingKey"; readonly path: Path; readonly expected: string }
  | { readonly _tag: "NotOneOf"; readonly path: Path; readonly actual: unknown; readonly choices: ReadonlyArray<unknown> }
  | { readonly _tag: "WrongType"; readonly path: Path; readonly actual: unknown; readonly expected: string }
  /** A check with its own words: a filter's message, a failed transformation, a forbidden effect. */
  | { readonly _tag: "Invalid"; readonly path: Path; readonly message: string }

/** Load-time decoding: every problem at once, and a key the schema does not have is a problem. */
export const decodeOptions = { errors: "all", onExcessProperty: "error" } as const

// ---------------------------------------------------------------------------------------------------
// Describing what a schema takes and what a value is

const isUndefined = (ast: SchemaAST.AST): boolean => ast._tag === "UndefinedKeyword"

/**
 * The shapes a value may take at `ast` on the encoded side (what YAML gives): unions flattened,
 * transformations and refinements seen through.
 */
export const alternatives = (ast: SchemaAST.AST): ReadonlyArray<SchemaAST.AST> => {
  switch (ast._tag) {
    case "Transformation":
    case "Refinement":
      return alternatives(ast.from)
    case "Suspend":
      return alternatives(ast.f())
    case "Union":
      return ast.types.flatMap(alternatives)
    default:
      return [ast]
  }
}

/** The literal values `ast` accepts when it accepts nothing else, else undefined. */
const literalsOf = (ast: SchemaAST.AST): ReadonlyArray<SchemaAST.LiteralValue> | undefined => {
  const members = alternatives(ast).filter((a) => !isUndefined(a))
  return members.length > 0 && members.every(SchemaAST.isLiteral) ? members.map((a) => a.literal) : undefined
}

const quote = (literal: unknown): string => (typeof literal === "string" ? literal : JSON.stringify(literal) ?? String(literal))

/** "'mlp'", or "one of 'mlp' or 'cnn'". */
const describeLiterals = (values: ReadonlyArray<unknown>): string =>
  values.length === 1 ? `'${quote(values[0])}'` : `one of ${choices(values.map(quote))}`

/** What a schema node takes, in words: "a number", "a positive number", "a list (items: a string)". */
export const describeSchema = (ast: SchemaAST.AST): string => {
  const literals = literalsOf(ast)
  if (literals !== undefined) return describeLiterals(literals)
  switch (ast._tag) {
    case "Transformation":
      return describeSchema(ast.from)
    case "Suspend":
      return describeSchema(ast.f())
    case "Refinement":
      // Effect's own filters (positive, int, between ...) describe themselves: "a positive number".
      return Option.getOrElse(SchemaAST.getDescriptionAnnotation(ast), () => describeSchema(ast.from))
    case "Union":
      return [...new Set(ast.types.filter((t) => !isUndefined(t)).map(describeSchema))].join(" or ")
    case "NumberKeyword":
      return "a number"
    case "StringKeyword":
      return "a string"
    case "BooleanKeyword":
      return "a boolean"
    case "UndefinedKeyword":
      return "nothing"
    case "TupleType": {
      const item = ast.rest[0]?.type ?? ast.elements[0]?.type
      const list = ast.elements.length > 0 && ast.rest.length > 0 ? "a non-empty list" : "a list"
      return item === undefined || item._tag === "UnknownKeyword" ? list : `${list} (items: ${describeSchema(item)})`
    }
    case "TypeLiteral":
      return "a map"
    default:
      return "a value"
  }
}

/** A value as a message shows it: strings quoted, short lists and maps spelled out. */
export const describeActual = (actual: unknown): string => {
  if (actual === undefined) return "nothing"
  const json = JSON.stringify(actual)
  if (json !== undefined && json.length <= 40) return json
  return Array.isArray(actual) ? "a list" : typeof actual === "object" && actual !== null ? "a map" : String(actual)
}

// ---------------------------------------------------------------------------------------------------
// Walking the ParseIssue tree

const keysOf = (ast: SchemaAST.AST): ReadonlyArray<string> =>
  ast._tag === "TypeLiteral" ? ast.propertySignatures.map((ps) => String(ps.name)) : []

const pathOf = (path: ParseResult.Path): Path =>
  (Array.isArray(path) ? path : [path]).map((p) => (typeof p === "symbol" ? String(p) : p))

/** A member of a union the value does not even have the shape of: beaten by any member it got into. */
const isShallow = (issues: ReadonlyArray<SchemaIssue>, at: Path): boolean =>
  issues.every((i) => i.path.length === at.length && (i._tag === "WrongType" || i._tag === "NotOneOf"))

const walk = (issue: ParseResult.ParseIssue, at: Path, container: SchemaAST.AST | undefined): ReadonlyArray<SchemaIssue> => {
  switch (issue._tag) {
    case "Pointer":
      return walk(issue.issue, [...at, ...pathOf(issue.path)], container)
    case "Refinement":
    case "Transformation":
      return walk(issue.issue, at, container)
    case "Composite": {
      const members = Array.isArray(issue.issues) ? issue.issues : [issue.issues as ParseResult.ParseIssue]
      return issue.ast._tag === "Union" ? union(issue.ast, issue.actual, members, at) : members.flatMap((m) => walk(m, at, issue.ast))
    }
    case "Type": {
      if (issue.message !== undefined) return [{ _tag: "Invalid", path: at, message: issue.message }]
      const literals = literalsOf(issue.ast)
      return literals !== undefined
        ? [{ _tag: "NotOneOf", path: at, actual: issue.actual, choices: literals }]
        : [{ _tag: "WrongType", path: at, actual: issue.actual, expected: describeSchema(issue.ast) }]
    }
    case "Missing":
      return [{ _tag: "MissingKey", path: at, expected: describeSchema(issue.ast.type) }]
    case "Unexpected":
      return [{ _tag: "UnknownKey", path: at, valid: container === undefined ? [] : keysOf(container) }]
    case "Forbidden":
      return [{ _tag: "Invalid", path: at, message: issue.message ?? "cannot be checked here" }]
  }
}

/** A value no member of a union takes, reported once (see the module comment). */
const union = (
  ast: SchemaAST.Union,
  actual: unknown,
  members: ReadonlyArray<ParseResult.ParseIssue>,
  at: Path
): ReadonlyArray<SchemaIssue> => {
  // The `undefined` of an optional key is no alternative for a value that is there.
  const relevant = members.filter((m) => !(m._tag === "Type" && isUndefined(m.ast)))
  const results = (relevant.length > 0 ? relevant : members).map((m) => walk(m, at, ast))
  const deep = results.filter((r) => !isShallow(r, at))
  if (deep.length > 0) return deep.flat()
  const flat = results.flat()
  if (flat.length > 0 && flat.every((i) => i._tag === "NotOneOf")) {
    return [{ _tag: "NotOneOf", path: at, actual, choices: [...new Set(flat.flatMap((i) => i.choices))] }]
  }
  const expected = flat.map((i) => (i._tag === "WrongType" ? i.expected : i._tag === "NotOneOf" ? describeLiterals(i.choices) : ""))
  return [{ _tag: "WrongType", path: at, actual, expected: [...new Set(expected.filter((e) => e !== ""))].join(" or ") }]
}

/** The issues of a failed decode, flat, each at the path of the value it is about. */
export const schemaIssues = (error: ParseResult.ParseError | ParseResult.ParseIssue): ReadonlyArray<SchemaIssue> =>
  walk(error._tag === "ParseError" ? error.issue : error, [], undefined)

// ---------------------------------------------------------------------------------------------------
// Wording

export interface Wording {
  /** What a key is called here: "param" in a node's params, "key" elsewhere. */
  readonly noun: string
  /** Who the problem belongs to, put before the message: "node 'one' (constant)", "sweep". */
  readonly who?: string
  /** Name segments before the issue's own path: ["generate"] names `generate.topk`. */
  readonly prefix?: Path
  /** Keys also valid at the top level, besides the schema's own (the macro's own params). */
  readonly extraKeys?: ReadonlyArray<string>
  /** What the decoded value as a whole is called ("params" by default; "" when `who` says it). */
  readonly whole?: string
}

/** `model.hidden[0]`: a path as a YAML reader writes it. */
export const describePath = (path: Path): string =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("")

/**
 * "unknown param 'x' (did you mean 'y'?); valid params here: ...": one wording for every unknown key.
 * `label` names it, quoted, with any context: "'objective.temprature'", "'temprature' in 'objective'".
 */
export const unknownKeyMessage = (noun: string, label: string, key: string, valid: ReadonlyArray<string>): string =>
  `unknown ${noun} ${label}${didYouMean(key, valid)}${valid.length > 0 ? `; valid ${noun}s here: ${choices(valid)}` : ""}`

/** One issue as a message (without its position). */
export const formatSchemaIssue = (issue: SchemaIssue, wording: Wording): string => {
  const full = [...(wording.prefix ?? []), ...issue.path]
  const name = full.length > 0 ? `${wording.noun} '${describePath(full)}'` : wording.whole ?? `${wording.noun}s`
  const about = (text: string) => (name === "" ? text : `${name}: ${text}`)
  const body = ((): string => {
    switch (issue._tag) {
      case "UnknownKey": {
        const key = issue.path[issue.path.length - 1]
        if (typeof key === "number") return `${wording.noun} '${describePath(full.slice(0, -1))}' has too many items: ${key + 1} or more`
        const valid = issue.path.length === 1 ? [...issue.valid, ...(wording.extraKeys ?? [])] : issue.valid
        return unknownKeyMessage(wording.noun, `'${describePath(full)}'`, String(key), valid)
      }
      case "MissingKey": {
        const key = issue.path[issue.path.length - 1]
        return typeof key === "number"
          ? `${wording.noun} '${describePath(full.slice(0, -1))}' needs at least ${key + 1} item${key === 0 ? "" : "s"}`
          : `missing required ${name}, which takes ${issue.expected}`
      }
      case "NotOneOf": {
        const names = issue.choices.map(quote)
        const suggestion = typeof issue.actual === "string" ? didYouMean(issue.actual, names) : ""
        return about(
          names.length === 1
            ? `expected '${names[0]}', got ${describeActual(issue.actual)}`
            : `${describeActual(issue.actual)} is not one of ${choices(names)}${suggestion}`
        )
      }
      case "WrongType":
        return about(`expected ${issue.expected}, got ${describeActual(issue.actual)}`)
      case "Invalid":
        return about(issue.message)
    }
  })()
  return wording.who === undefined ? body : `${wording.who}: ${body}`
}

/** A message about the value at `path` (relative to what was decoded). */
export interface PathMessage {
  readonly path: Path
  readonly message: string
}

/** Decodes `value` with the load-time options; on failure, every issue worded by `wording`. */
export const decodeChecked = <A, I>(
  schema: Schema.Schema<A, I, never>,
  value: unknown,
  wording: Wording
): Either.Either<A, ReadonlyArray<PathMessage>> =>
  Either.mapLeft(Schema.decodeUnknownEither(schema, decodeOptions)(value), (error) =>
    schemaIssues(error).map((issue) => ({ path: issue.path, message: formatSchemaIssue(issue, wording) }))
  )
