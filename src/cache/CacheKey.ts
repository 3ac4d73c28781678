/**
 * The cache key of a node's result: sha256 (hex) of the canonical JSON of
 * `{ kind, version, params, inputs, seed }`, where `params` are the node's resolved params in their
 * encoded (JSON) form and `inputs` maps each input port to its upstream key (`"<key>#<port>"`).
 * Reordering keys anywhere does not change it; changing any value, the kind's version, an upstream
 * key or the seed does. `diffKeyParts` says which of those differ, for the `explain` verb.
 *
 * Import as a namespace: `import * as CacheKey from "../cache/CacheKey.js"`.
 */
import { createHash } from "node:crypto"
import { Effect } from "effect"
import type { CacheKey as CacheKeyType } from "../domain/Ids.js"
import { canonicalJson, CanonicalJsonError, pathOf } from "./CanonicalJson.js"

export type CacheKey = CacheKeyType

/** Everything a node's result depends on. */
export interface KeyParts {
  readonly kind: string
  /** The node kind's version: bumping it invalidates every result of the kind. */
  readonly version: number
  /** Resolved params, encoded (plain JSON, no NaN/Infinity). */
  readonly params: unknown
  /** Input port -> upstream key, e.g. `{ teacher: "<key>#model" }`. */
  readonly inputs: Readonly<Record<string, string>>
  /** The node's seed; leave it out for nodes whose result does not depend on one. */
  readonly seed?: number | undefined
}

/** sha256 hex of the canonical JSON of the parts. Throws `CanonicalJsonError` for non-JSON params. */
export const make = (parts: KeyParts): CacheKey =>
  createHash("sha256")
    .update(
      canonicalJson({
        kind: parts.kind,
        version: parts.version,
        params: parts.params,
        inputs: parts.inputs,
        seed: parts.seed
      }),
      "utf8"
    )
    .digest("hex") as CacheKey

/** `make` as an Effect, failing with `CanonicalJsonError` instead of throwing. */
export const makeEffect = (parts: KeyParts): Effect.Effect<CacheKey, CanonicalJsonError> =>
  Effect.try({
    try: () => make(parts),
    catch: (e) =>
      e instanceof CanonicalJsonError ? e : new CanonicalJsonError({ path: "<root>", message: String(e) })
  })

/** The key of one output port of a node, as used in a downstream node's `inputs`. */
export const portRef = (key: CacheKey, port: string): string => `${key}#${port}`

export type KeyPartField = "kind" | "version" | "params" | "inputs" | "seed"

/** One difference between two sets of key parts. */
export interface KeyPartDiff {
  readonly field: KeyPartField
  /**
   * Dotted path from the top of the parts: `version`, `seed`, `kind`, `inputs.teacher`,
   * `params.optimizer.lr`, `params.layers.0.units`. A value present on one side only is `undefined`
   * on the other.
   */
  readonly path: string
  readonly before: unknown
  readonly after: unknown
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Equal as canonical JSON would see them (so key order is irrelevant; undefined fields are absent). */
const sameLeaf = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a === "number" && typeof b === "number") return Object.is(a, b) || (a === 0 && b === 0)
  if (typeof a === "object" && typeof b === "object" && a !== null && b !== null) {
    try {
      return canonicalJson(a) === canonicalJson(b)
    } catch {
      return false
    }
  }
  return false
}

const diffValues = (
  field: KeyPartField,
  path: string,
  a: unknown,
  b: unknown,
  out: Array<KeyPartDiff>
): void => {
  if (isRecord(a) && isRecord(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const key of [...keys].sort()) {
      if (a[key] === undefined && b[key] === undefined) continue
      diffValues(field, pathOf(path, key), a[key], b[key], out)
    }
    return
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.max(a.length, b.length)
    for (let i = 0; i < n; i++) diffValues(field, pathOf(path, i), a[i], b[i], out)
    return
  }
  if (!sameLeaf(a, b)) out.push({ field, path, before: a, after: b })
}

/**
 * Which parts differ between `before` and `after`, as leaf paths in a stable order
 * (kind, version, seed, inputs, params; keys sorted). Empty when both give the same key.
 */
export const diffKeyParts = (before: KeyParts, after: KeyParts): ReadonlyArray<KeyPartDiff> => {
  const out: Array<KeyPartDiff> = []
  diffValues("kind", "kind", before.kind, after.kind, out)
  diffValues("version", "version", before.version, after.version, out)
  diffValues("seed", "seed", before.seed, after.seed, out)
  diffValues("inputs", "inputs", before.inputs, after.inputs, out)
  diffValues("params", "params", before.params, after.params, out)
  return out
}
