/**
 * Filters for a language model's samples (sequence-level KD's data): pure functions that decide, row by
 * row, which generated samples to keep, and slice a Generations artifact down to the kept rows. The
 * rules apply in the order of `RuleNames`; a dropped row's reason starts with the name of the first
 * rule that dropped it. The per-row rules (finish reason, token count, mean log-probability) come
 * first, so that a row they drop can never make a later good row a duplicate; the duplicate rules then
 * compare each surviving row with the rows kept before it (row order: the first one wins).
 *
 * Near duplicates are judged by the Jaccard similarity |A ∩ B| / |A ∪ B| of the two rows' n-gram sets
 * (character n-grams of the whitespace-normalised text, or generated-token n-grams). `method: jaccard`
 * (the default) computes it exactly, with the candidates found through an inverted index from n-gram to
 * kept rows: the worst case is every pair of rows (G × kept set intersections), fine up to a few
 * thousand rows. `method: minhash` (Broder 1997) estimates it from `permutations` seeded min-hashes per
 * row, the share of equal ones, and finds candidates by locality-sensitive hashing (`bands` bands of
 * permutations / bands rows; a pair is a candidate when one band agrees entirely): linear in the rows,
 * at the price of missing a pair now and then near the threshold. Both depend on nothing but the rows,
 * their order and (minhash) the seed.
 */
import type { Generations } from "../domain/Artifact.js"
import { makeRng } from "../domain/Random.js"

export type FinishReason = Generations["finishReasons"][number]
export const FinishReasons = ["stop", "length", "context"] as const satisfies ReadonlyArray<FinishReason>

/** The rules, in the order they apply. */
export const RuleNames = ["finish_reason", "min_tokens", "max_tokens", "min_mean_log_prob", "exact_duplicate", "near_duplicate"] as const
export type RuleName = (typeof RuleNames)[number]

export const NearDuplicateMethods = ["jaccard", "minhash"] as const
export type NearDuplicateMethod = (typeof NearDuplicateMethods)[number]

export interface NearDuplicateRule {
  /** Drop a row whose n-gram Jaccard similarity with a kept row is at least this (in (0, 1]). */
  readonly threshold: number
  readonly n: number
  readonly unit: "chars" | "tokens"
  /** Exact Jaccard (default), or its MinHash estimate over LSH candidates. */
  readonly method?: NearDuplicateMethod
  /** minhash: hash functions per row (default 128). */
  readonly permutations?: number
  /** minhash: LSH bands (default 32); must divide permutations. */
  readonly bands?: number
  /** minhash: the seed of the hash functions (default 0). */
  readonly seed?: number
}

export const DefaultPermutations = 128
export const DefaultBands = 32

/** What is wrong with a near-duplicate rule's minhash settings, or undefined. */
export const checkNearDuplicate = (rule: {
  readonly method?: NearDuplicateMethod | undefined
  readonly permutations?: number | undefined
  readonly bands?: number | undefined
}): string | undefined => {
  if ((rule.method ?? "jaccard") !== "minhash") {
    return rule.permutations !== undefined || rule.bands !== undefined ? "nearDuplicate: permutations and bands apply to method: minhash only" : undefined
  }
  const permutations = rule.permutations ?? DefaultPermutations
  const bands = rule.bands ?? DefaultBands
  if (bands > permutations || permutations % bands !== 0) {
    return `nearDuplicate: bands ${bands} must divide permutations ${permutations} (rows per band = permutations / bands)`
  }
  return undefined
}

/** Absent fields are rules not applied. */
export interface SampleRules {
  readonly finishReasons?: ReadonlyArray<FinishReason>
  readonly minTokens?: number
  readonly maxTokens?: number
  readonly minMeanLogProb?: number
  /** Whose mean log-probability `minMeanLogProb` reads: the generator's (`meanLogProb`) or the scorer's (`scores.tokenLogProb`). */
  readonly logProbBy?: "generator" | "scorer"
  readonly dedupe?: "exact"
  readonly nearDuplicate?: NearDuplicateRule
  /** Whether duplicates are looked for among all rows or among the samples of one prompt only. */
  readonly duplicatesWithin?: "all" | "prompt"
}

export interface Decision {
  readonly keep: boolean
  /** The first rule that dropped the row; absent when kept. */
  readonly rule?: RuleName
  readonly reason: string
}

/** The rules `rules` applies, in order, each with a description for a node's info. */
export const activeRules = (rules: SampleRules): ReadonlyArray<{ readonly rule: RuleName; readonly description: string }> => {
  const within = rules.duplicatesWithin === "prompt" ? "among the samples of one prompt" : "among all rows"
  const near = rules.nearDuplicate
  const all: ReadonlyArray<readonly [RuleName, string | undefined]> = [
    ["finish_reason", rules.finishReasons !== undefined ? `finish reason in [${rules.finishReasons.join(", ")}]` : undefined],
    ["min_tokens", rules.minTokens !== undefined ? `at least ${rules.minTokens} generated tokens` : undefined],
    ["max_tokens", rules.maxTokens !== undefined ? `at most ${rules.maxTokens} generated tokens` : undefined],
    [
      "min_mean_log_prob",
      rules.minMeanLogProb !== undefined ? `the ${rules.logProbBy ?? "generator"}'s mean log-prob per generated token at least ${rules.minMeanLogProb}` : undefined
    ],
    ["exact_duplicate", rules.dedupe === "exact" ? `no text identical (whitespace normalised) to a kept row's, ${within}` : undefined],
    [
      "near_duplicate",
      near !== undefined
        ? (near.method ?? "jaccard") === "minhash"
          ? `MinHash estimate (${near.permutations ?? DefaultPermutations} permutations, ${near.bands ?? DefaultBands} LSH bands, seed ${near.seed ?? 0}) of the Jaccard similarity of ${near.unit === "chars" ? "character" : "token"} ${near.n}-gram sets below ${near.threshold} with every kept LSH candidate, ${within}`
          : `exact Jaccard similarity of ${near.unit === "chars" ? "character" : "token"} ${near.n}-gram sets below ${near.threshold} with every kept row, ${within}`
        : undefined
    ]
  ]
  return all.flatMap(([rule, description]) => (description !== undefined ? [{ rule, description }] : []))
}

/** Runs of whitespace as one space, no leading or trailing whitespace. */
export const normalizeWhitespace = (text: string): string => text.trim().replace(/\s+/g, " ")

/** The set of n-grams of a sequence, each as a string key; a sequence shorter than n is one gram (none when empty). */
export const ngramSet = (items: ReadonlyArray<string | number>, n: number, separator = ""): Set<string> => {
  const grams = new Set<string>()
  if (items.length === 0) return grams
  if (items.length < n) {
    grams.add(items.join(separator))
    return grams
  }
  for (let i = 0; i + n <= items.length; i++) grams.add(items.slice(i, i + n).join(separator))
  return grams
}

/** |A ∩ B| / |A ∪ B|; two empty sets are identical (1). */
export const jaccard = (a: ReadonlySet<string>, b: ReadonlySet<string>): number => {
  if (a.size === 0 && b.size === 0) return 1
  const [small, large] = a.size <= b.size ? [a, b] : [b, a]
  let shared = 0
  for (const g of small) if (large.has(g)) shared++
  return shared / (a.size + b.size - shared)
}

/** Generated tokens of row g. */
export const tokenCount = (gen: Generations, g: number): number => gen.offsets[g + 1]! - gen.offsets[g]!

/** Row g's mean log-probability per generated token by the generator or the scorer (NaN with no tokens). */
export const meanLogProbOf = (gen: Generations, g: number, by: "generator" | "scorer"): number => {
  if (by === "generator") return tokenCount(gen, g) === 0 ? NaN : gen.meanLogProb[g]!
  if (gen.scores === undefined) throw new Error("meanLogProbOf: the generations carry no scores")
  const from = gen.offsets[g]!
  const to = gen.offsets[g + 1]!
  let sum = 0
  for (let p = from; p < to; p++) sum += gen.scores.tokenLogProb[p]!
  return to > from ? sum / (to - from) : NaN
}

/** Row g's n-gram set for the near-duplicate rule. */
const gramsOf = (gen: Generations, g: number, rule: NearDuplicateRule): Set<string> =>
  rule.unit === "chars"
    ? ngramSet(Array.from(normalizeWhitespace(gen.texts[g]!)), rule.n)
    : ngramSet(Array.from(gen.tokens.subarray(gen.offsets[g]!, gen.offsets[g + 1]!)), rule.n, ",")

/** Kept rows' n-gram sets, indexed by n-gram, to find the rows that share any n-gram with a candidate. */
const makeNgramIndex = () => {
  const postings = new Map<string, Array<number>>()
  const sizes = new Map<number, number>()
  const empty: Array<number> = []
  return {
    add: (row: number, grams: ReadonlySet<string>) => {
      sizes.set(row, grams.size)
      if (grams.size === 0) empty.push(row)
      for (const gram of grams) {
        const rows = postings.get(gram)
        if (rows === undefined) postings.set(gram, [row])
        else rows.push(row)
      }
    },
    /** The kept row most similar to `grams` (the earliest on a tie) and the similarity. */
    nearest: (grams: ReadonlySet<string>): { readonly row: number; readonly similarity: number } | undefined => {
      if (grams.size === 0) return empty.length > 0 ? { row: empty[0]!, similarity: 1 } : undefined
      const shared = new Map<number, number>()
      for (const gram of grams) for (const row of postings.get(gram) ?? []) shared.set(row, (shared.get(row) ?? 0) + 1)
      let best: { row: number; similarity: number } | undefined
      for (const [row, count] of shared) {
        const similarity = count / (grams.size + sizes.get(row)! - count)
        if (best === undefined || similarity > best.similarity || (similarity === best.similarity && row < best.row)) best = { row, similarity }
      }
      return best
    }
  }
}

/** A 32-bit hash of a string (FNV-1a, then murmur3's finaliser). */
const hashString = (s: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return mix32(h)
}

/** murmur3's 32-bit finaliser: every input bit moves every output bit. */
const mix32 = (x: number): number => {
  x ^= x >>> 16
  x = Math.imul(x, 0x85ebca6b)
  x ^= x >>> 13
  x = Math.imul(x, 0xc2b2ae35)
  x ^= x >>> 16
  return x >>> 0
}

/** `permutations` seeded hash functions (x -> mix32(x ^ salt_i) with a second round), as their salts. */
export const minHashSalts = (permutations: number, seed: number): Uint32Array => {
  const rng = makeRng(seed)
  return Uint32Array.from({ length: permutations }, () => Math.floor(rng.next() * 4294967296) >>> 0)
}

/** A set's MinHash signature: per hash function, the least hash of its members (all 0xffffffff when empty). */
export const minHashSignature = (grams: ReadonlySet<string>, salts: Uint32Array): Uint32Array => {
  const signature = new Uint32Array(salts.length).fill(0xffffffff)
  for (const gram of grams) {
    const base = hashString(gram)
    for (let i = 0; i < salts.length; i++) {
      const h = mix32(Math.imul(base ^ salts[i]!, 0x9e3779b1) ^ salts[i]!)
      if (h < signature[i]!) signature[i] = h
    }
  }
  return signature
}

/** The share of positions where two signatures agree: the MinHash estimate of the sets' Jaccard similarity. */
export const minHashSimilarity = (a: Uint32Array, b: Uint32Array): number => {
  let same = 0
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++
  return a.length > 0 ? same / a.length : 0
}

/** Kept rows' signatures in LSH buckets (one per band and band value); a candidate's nearest among those sharing a bucket. */
const makeMinHashIndex = (salts: Uint32Array, bands: number) => {
  const rowsPerBand = salts.length / bands
  const buckets = new Map<string, Array<number>>()
  const signatures = new Map<number, Uint32Array>()
  const empty: Array<number> = []
  const keys = (signature: Uint32Array) =>
    Array.from({ length: bands }, (_, b) => `${b}:${Array.from(signature.subarray(b * rowsPerBand, (b + 1) * rowsPerBand)).join(",")}`)
  return {
    signature: (grams: ReadonlySet<string>) => minHashSignature(grams, salts),
    add: (row: number, grams: ReadonlySet<string>, signature: Uint32Array) => {
      if (grams.size === 0) return void empty.push(row)
      signatures.set(row, signature)
      for (const key of keys(signature)) {
        const rows = buckets.get(key)
        if (rows === undefined) buckets.set(key, [row])
        else rows.push(row)
      }
    },
    nearest: (grams: ReadonlySet<string>, signature: Uint32Array): { readonly row: number; readonly similarity: number } | undefined => {
      if (grams.size === 0) return empty.length > 0 ? { row: empty[0]!, similarity: 1 } : undefined
      const candidates = new Set<number>()
      for (const key of keys(signature)) for (const row of buckets.get(key) ?? []) candidates.add(row)
      let best: { row: number; similarity: number } | undefined
      for (const row of candidates) {
        const similarity = minHashSimilarity(signature, signatures.get(row)!)
        if (best === undefined || similarity > best.similarity || (similarity === best.similarity && row < best.row)) best = { row, similarity }
      }
      return best
    }
  }
}

const f3 = (v: number) => v.toFixed(3)

/** Keep or drop, with the reason, for every row of `gen`, by `rules` in the order of `RuleNames`. */
export const decide = (rules: SampleRules, gen: Generations): ReadonlyArray<Decision> => {
  const by = rules.logProbBy ?? "generator"
  const byPrompt = rules.duplicatesWithin === "prompt"
  const scope = (g: number) => (byPrompt ? gen.promptIds[g]! : "")
  const texts = new Map<string, number>()
  const indexes = new Map<string, ReturnType<typeof makeNgramIndex>>()
  const near = rules.nearDuplicate
  const minhash = near !== undefined && near.method === "minhash"
  if (near !== undefined) {
    const problem = checkNearDuplicate(near)
    if (problem !== undefined) throw new Error(`decide: ${problem}`)
  }
  const salts = minhash ? minHashSalts(near.permutations ?? DefaultPermutations, near.seed ?? 0) : undefined
  const minIndexes = new Map<string, ReturnType<typeof makeMinHashIndex>>()
  const decisions: Array<Decision> = []
  const drop = (rule: RuleName, why: string): Decision => ({ keep: false, rule, reason: `${rule}: ${why}` })
  for (let g = 0; g < gen.texts.length; g++) {
    const tokens = tokenCount(gen, g)
    const finish = gen.finishReasons[g]!
    const meanLogProb = meanLogProbOf(gen, g, by)
    const decision = ((): Decision | undefined => {
      if (rules.finishReasons !== undefined && !rules.finishReasons.includes(finish)) {
        return drop("finish_reason", `'${finish}' not in [${rules.finishReasons.join(", ")}]`)
      }
      if (rules.minTokens !== undefined && tokens < rules.minTokens) return drop("min_tokens", `${tokens} tokens < ${rules.minTokens}`)
      if (rules.maxTokens !== undefined && tokens > rules.maxTokens) return drop("max_tokens", `${tokens} tokens > ${rules.maxTokens}`)
      if (rules.minMeanLogProb !== undefined && !(meanLogProb >= rules.minMeanLogProb)) {
        return drop(
          "min_mean_log_prob",
          Number.isNaN(meanLogProb) ? `no generated tokens to average` : `${by} mean log-prob ${f3(meanLogProb)} < ${rules.minMeanLogProb}`
        )
      }
      const key = rules.dedupe === "exact" ? `${scope(g)}\u0000${normalizeWhitespace(gen.texts[g]!)}` : undefined
      const first = key !== undefined ? texts.get(key) : undefined
      if (first !== undefined) return drop("exact_duplicate", `same text as row ${first}`)
      if (near !== undefined && minhash) {
        let index = minIndexes.get(scope(g))
        if (index === undefined) minIndexes.set(scope(g), (index = makeMinHashIndex(salts!, near.bands ?? DefaultBands)))
        const grams = gramsOf(gen, g, near)
        const signature = index.signature(grams)
        const nearest = index.nearest(grams, signature)
        if (nearest !== undefined && nearest.similarity >= near.threshold) {
          return drop(
            "near_duplicate",
            `MinHash Jaccard ~${f3(nearest.similarity)} >= ${near.threshold} with row ${nearest.row} (${near.unit} ${near.n}-grams, ${salts!.length} permutations, ${near.bands ?? DefaultBands} bands)`
          )
        }
        index.add(g, grams, signature)
      } else if (near !== undefined) {
        let index = indexes.get(scope(g))
        if (index === undefined) indexes.set(scope(g), (index = makeNgramIndex()))
        const grams = gramsOf(gen, g, near)
        const nearest = index.nearest(grams)
        if (nearest !== undefined && nearest.similarity >= near.threshold) {
          return drop("near_duplicate", `Jaccard ${f3(nearest.similarity)} >= ${near.threshold} with row ${nearest.row} (${near.unit} ${near.n}-grams)`)
        }
        index.add(g, grams)
      }
      if (key !== undefined) texts.set(key, g)
      return undefined
    })()
    decisions.push(
      decision ??
        { keep: true, reason: `kept: ${tokens} tokens, ${finish}, ${by} mean log-prob ${Number.isNaN(meanLogProb) ? "none" : f3(meanLogProb)}` }
    )
  }
  return decisions
}

/** Dropped rows per rule, for every rule applied (0 where it dropped none). */
export const droppedPerRule = (rules: SampleRules, decisions: ReadonlyArray<Decision>): ReadonlyArray<readonly [RuleName, number]> =>
  activeRules(rules).map(({ rule }) => [rule, decisions.filter((d) => d.rule === rule).length] as const)

/** The rows of `gen` whose flag is set, in order: every per-row array, the offsets and `scores` sliced alike. */
export const keepRows = (gen: Generations, keep: ReadonlyArray<boolean>): Generations => {
  const rows = keep.flatMap((k, g) => (k ? [g] : []))
  const spans = <A extends Int32Array | Float32Array>(values: A, offsets: Int32Array, width: number, make: (n: number) => A) => {
    const total = rows.reduce((n, g) => n + (offsets[g + 1]! - offsets[g]!), 0)
    const out = make(total * width)
    const outOffsets = new Int32Array(rows.length + 1)
    rows.forEach((g, j) => {
      const from = offsets[g]!
      const to = offsets[g + 1]!
      out.set(values.subarray(from * width, to * width), outOffsets[j]! * width)
      outOffsets[j + 1] = outOffsets[j]! + (to - from)
    })
    return { values: out, offsets: outOffsets }
  }
  const i32 = (n: number) => new Int32Array(n)
  const f32 = (n: number) => new Float32Array(n)
  const pick = <T>(values: ReadonlyArray<T>): Array<T> => rows.map((g) => values[g]!)
  const prompt = spans(gen.promptTokens, gen.promptOffsets, 1, i32)
  const generated = spans(gen.tokens, gen.offsets, 1, i32)
  const scores = gen.scores
  return {
    ...gen,
    promptIds: pick(gen.promptIds),
    sample: Int32Array.from(rows, (g) => gen.sample[g]!),
    seeds: Int32Array.from(rows, (g) => gen.seeds[g]!),
    prompts: pick(gen.prompts),
    texts: pick(gen.texts),
    promptTokens: prompt.values,
    promptOffsets: prompt.offsets,
    tokens: generated.values,
    offsets: generated.offsets,
    finishReasons: pick(gen.finishReasons),
    meanLogProb: Float32Array.from(rows, (g) => gen.meanLogProb[g]!),
    ...(gen.answers !== undefined ? { answers: rows.map((g) => gen.answers![g] ?? null) } : {}),
    ...(scores !== undefined
      ? {
          scores: {
            scorer: scores.scorer,
            k: scores.k,
            indices: spans(scores.indices, gen.offsets, scores.k, i32).values,
            logProbs: spans(scores.logProbs, gen.offsets, scores.k, f32).values,
            tailLogProb: spans(scores.tailLogProb, gen.offsets, 1, f32).values,
            tokenLogProb: spans(scores.tokenLogProb, gen.offsets, 1, f32).values
          }
        }
      : {})
  }
}
