/**
 * What every tokenizer shares, after karpathy/minbpe `base.py`: the pair statistics and the merge step,
 * the vocabulary each id decodes to (bytes 0..255, then one entry per merge, then the special tokens),
 * encode and decode, and save / load as a small text format. Pure functions over bytes; a byte-level
 * tokenizer is a `Tokenizer` with no merges, so it goes through the same code.
 */
import { Either, Schema } from "effect"
import type { Tokenizer } from "../domain/Artifact.js"
import { makeHeap, pop, push } from "./Heap.js"

/** Ids below this are single bytes; merge i makes id BYTE_TOKENS + i. */
export const BYTE_TOKENS = 256
/** The special tokens a tokenizer gets unless told otherwise. */
export const DEFAULT_SPECIAL: ReadonlyArray<string> = ["<pad>", "<bos>", "<eos>"]
/** Pair keys pack two ids below this bound into one number (left * MAX_VOCAB + right). */
export const MAX_VOCAB = 65536

/**
 * GPT-2's pre-tokenizer (contractions, letters, numbers, other symbols, each with one leading space;
 * runs of whitespace): merges never cross a chunk, so a word is one unit of the statistics.
 */
const GPT2_PATTERN = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu

export const pairKey = (left: number, right: number): number => left * MAX_VOCAB + right

/** Cuts text into the chunks merges stay within. The chunks joined are the text. */
export const chunksOf = (text: string, pattern: Tokenizer["pattern"]): Array<string> =>
  pattern === "none" ? (text === "" ? [] : [text]) : text.match(GPT2_PATTERN) ?? []

/** Adds `weight` to the count of every adjacent pair of `ids` (minbpe `get_stats`). */
export const countPairs = (ids: ArrayLike<number>, counts: Map<number, number>, weight = 1): void => {
  for (let i = 0; i + 1 < ids.length; i++) {
    const key = pairKey(ids[i]!, ids[i + 1]!)
    counts.set(key, (counts.get(key) ?? 0) + weight)
  }
}

/** `ids` with every non-overlapping occurrence of (left, right), left to right, replaced by `id`. */
export const mergePair = (ids: ReadonlyArray<number>, left: number, right: number, id: number): Array<number> => {
  const out: Array<number> = []
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === left && ids[i + 1] === right && i + 1 < ids.length) {
      out.push(id)
      i++
    } else {
      out.push(ids[i]!)
    }
  }
  return out
}

export const mergeCount = (tokenizer: Tokenizer): number => tokenizer.merges.length / 2

/** A tokenizer with the given merges and the special tokens numbered after them. */
export const makeTokenizer = (
  type: Tokenizer["type"],
  merges: Int32Array,
  special: ReadonlyArray<string>,
  pattern: Tokenizer["pattern"]
): Tokenizer => {
  const first = BYTE_TOKENS + merges.length / 2
  return {
    _tag: "Tokenizer",
    type,
    vocabSize: first + special.length,
    merges,
    special: Object.fromEntries(special.map((name, i) => [name, first + i])),
    pattern
  }
}

/** The id of a special token; throws for a name the tokenizer does not have (a bug in the caller). */
export const specialId = (tokenizer: Tokenizer, name: string): number => {
  const id = tokenizer.special[name]
  if (id === undefined) throw new Error(`the tokenizer has no special token ${name}; it has ${Object.keys(tokenizer.special).join(", ")}`)
  return id
}

const utf8 = new TextEncoder()

/** The bytes every id decodes to (minbpe `_build_vocab`); special tokens decode to their names. */
export const vocabularyOf = (tokenizer: Tokenizer): ReadonlyArray<Uint8Array> => {
  const cached = vocabularies.get(tokenizer)
  if (cached !== undefined) return cached
  const vocab: Array<Uint8Array> = []
  for (let b = 0; b < BYTE_TOKENS; b++) vocab.push(Uint8Array.of(b))
  const m = tokenizer.merges
  for (let i = 0; i < m.length; i += 2) {
    const left = vocab[m[i]!]!
    const right = vocab[m[i + 1]!]!
    const both = new Uint8Array(left.length + right.length)
    both.set(left)
    both.set(right, left.length)
    vocab.push(both)
  }
  for (const [name, id] of Object.entries(tokenizer.special)) vocab[id] = utf8.encode(name)
  vocabularies.set(tokenizer, vocab)
  return vocab
}
const vocabularies = new WeakMap<Tokenizer, ReadonlyArray<Uint8Array>>()

/** Merge rank by pair key: lower merges first when encoding. */
const ranksOf = (tokenizer: Tokenizer): ReadonlyMap<number, number> => {
  const cached = ranks.get(tokenizer)
  if (cached !== undefined) return cached
  const m = tokenizer.merges
  const rank = new Map<number, number>()
  for (let i = 0; i < m.length; i += 2) rank.set(pairKey(m[i]!, m[i + 1]!), i / 2)
  ranks.set(tokenizer, rank)
  return rank
}
const ranks = new WeakMap<Tokenizer, ReadonlyMap<number, number>>()

interface Candidate {
  readonly rank: number
  readonly at: number
}

const earlier = (a: Candidate, b: Candidate): boolean => a.rank < b.rank || (a.rank === b.rank && a.at < b.at)

/**
 * One chunk's ids, as minbpe encodes it: start from the bytes and, while some adjacent pair has been
 * learned, merge every occurrence of the earliest-learned one, left to right. Done with a heap of
 * (rank, position) over a linked list, so a long chunk costs O(n log n), not O(n^2): a merge only
 * creates pairs learned later than itself, so popping by (rank, position) applies the merges in
 * exactly that order.
 */
export const encodeChunk = (bytes: Uint8Array, rank: ReadonlyMap<number, number>): Array<number> => {
  const n = bytes.length
  const ids = Array.from(bytes) // -1 marks a position merged into its left neighbour
  const next = Int32Array.from({ length: n }, (_, i) => i + 1)
  const prev = Int32Array.from({ length: n }, (_, i) => i - 1)
  const heap = makeHeap(earlier)
  const offer = (at: number): void => {
    if (at < 0 || next[at]! >= n) return
    const r = rank.get(pairKey(ids[at]!, ids[next[at]!]!))
    if (r !== undefined) push(heap, { rank: r, at })
  }
  for (let i = 0; i + 1 < n; i++) offer(i)
  for (let c = pop(heap); c !== undefined; c = pop(heap)) {
    const right = next[c.at]!
    // Stale: this position was merged away, or its pair changed since it was offered.
    if (ids[c.at]! < 0 || right >= n || rank.get(pairKey(ids[c.at]!, ids[right]!)) !== c.rank) continue
    ids[c.at] = BYTE_TOKENS + c.rank
    ids[right] = -1
    next[c.at] = next[right]!
    if (next[right]! < n) prev[next[right]!] = c.at
    offer(prev[c.at]!)
    offer(c.at)
  }
  return ids.filter((id) => id >= 0)
}

/**
 * The ids of `text`, special-token names included as plain text (they are never produced from text;
 * callers add `<bos>` / `<eos>` by id). Chunks repeat, so each distinct chunk is encoded once.
 */
export const encode = (tokenizer: Tokenizer, text: string): Array<number> => {
  const rank = ranksOf(tokenizer)
  const memo = new Map<string, ReadonlyArray<number>>()
  const out: Array<number> = []
  for (const chunk of chunksOf(text, tokenizer.pattern)) {
    let ids = memo.get(chunk)
    if (ids === undefined) {
      ids = rank.size === 0 ? Array.from(utf8.encode(chunk)) : encodeChunk(utf8.encode(chunk), rank)
      memo.set(chunk, ids)
    }
    for (const id of ids) out.push(id)
  }
  return out
}

/** The bytes the ids stand for, concatenated. */
export const decodeBytes = (tokenizer: Tokenizer, ids: ArrayLike<number>): Uint8Array => {
  const vocab = vocabularyOf(tokenizer)
  let length = 0
  for (let i = 0; i < ids.length; i++) length += vocab[ids[i]!]!.length
  const out = new Uint8Array(length)
  let at = 0
  for (let i = 0; i < ids.length; i++) {
    const piece = vocab[ids[i]!]!
    out.set(piece, at)
    at += piece.length
  }
  return out
}

/** The text the ids stand for; bytes that are not valid UTF-8 (a cut-off sequence) become U+FFFD. */
export const decode = (tokenizer: Tokenizer, ids: ArrayLike<number>): string =>
  new TextDecoder("utf-8", { ignoreBOM: true }).decode(decodeBytes(tokenizer, ids))

// ---------------------------------------------------------------------------------------------------
// Save and load: a small text file, as minbpe's `.model`

const HEADER = "distillery tokenizer v1"

/** A saved tokenizer that cannot be read back. */
export class TokenizerFormatError extends Schema.TaggedError<TokenizerFormatError>()("TokenizerFormatError", {
  line: Schema.Number,
  message: Schema.String
}) {}

/**
 * The tokenizer as text: the header, `type`, `pattern`, the special token names in id order (one per
 * line, JSON-quoted), then `merges M` and one `left right` line per merge.
 */
export const save = (tokenizer: Tokenizer): string => {
  const specials = Object.entries(tokenizer.special).sort((a, b) => a[1] - b[1])
  const lines = [HEADER, `type ${tokenizer.type}`, `pattern ${tokenizer.pattern}`, `special ${specials.length}`]
  for (const [name] of specials) lines.push(JSON.stringify(name))
  const m = tokenizer.merges
  lines.push(`merges ${m.length / 2}`)
  for (let i = 0; i < m.length; i += 2) lines.push(`${m[i]} ${m[i + 1]}`)
  return lines.join("\n") + "\n"
}

/** Reads what `save` wrote, checking every line. */
export const load = (text: string): Either.Either<Tokenizer, TokenizerFormatError> => {
  const lines = text.split("\n")
  let at = 0
  const fail = (message: string) => Either.left(new TokenizerFormatError({ line: at + 1, message: `line ${at + 1}: ${message}` }))
  const field = (name: string): string | undefined => {
    const line = lines[at] ?? ""
    return line.startsWith(name + " ") ? line.slice(name.length + 1) : undefined
  }
  if (lines[at] !== HEADER) return fail(`expected '${HEADER}'`)
  at++
  const type = field("type")
  if (type !== "bytes" && type !== "bpe") return fail("expected 'type bytes' or 'type bpe'")
  at++
  const pattern = field("pattern")
  if (pattern !== "gpt2" && pattern !== "none") return fail("expected 'pattern gpt2' or 'pattern none'")
  at++
  const specialCount = Number(field("special"))
  if (!Number.isInteger(specialCount) || specialCount < 0) return fail("expected 'special <count>'")
  const special: Array<string> = []
  for (let i = 0; i < specialCount; i++) {
    at++
    const name = Either.try(() => JSON.parse(lines[at] ?? "") as unknown)
    if (Either.isLeft(name) || typeof name.right !== "string") return fail("expected a special token name as a JSON string")
    special.push(name.right)
  }
  at++
  const mergeTotal = Number(field("merges"))
  if (!Number.isInteger(mergeTotal) || mergeTotal < 0) return fail("expected 'merges <count>'")
  const merges = new Int32Array(mergeTotal * 2)
  for (let i = 0; i < mergeTotal; i++) {
    at++
    const match = /^(\d+) (\d+)$/.exec(lines[at] ?? "")
    const left = Number(match?.[1])
    const right = Number(match?.[2])
    // A merge may only name ids that exist before it.
    if (match === null || left >= BYTE_TOKENS + i || right >= BYTE_TOKENS + i) {
      return fail(`expected merge ${i} as 'left right', two ids below ${BYTE_TOKENS + i}`)
    }
    merges[2 * i] = left
    merges[2 * i + 1] = right
  }
  return Either.right(makeTokenizer(type, merges, special, pattern))
}
