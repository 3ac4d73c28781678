/**
 * Byte-level BPE training, after karpathy/minbpe `regex.py`: cut the text into chunks (GPT-2's regex),
 * then repeatedly merge the most frequent adjacent pair of ids into a new id. The statistics are kept
 * over the distinct chunks weighted by their counts, and updated only for the chunks a merge touches,
 * with a heap to find the next pair, so a merge costs what it changes rather than a pass over the corpus.
 * Ties go to the smallest (left, right) pair, so the merges depend only on the text.
 */
import type { Tokenizer } from "../domain/Artifact.js"
import { makeHeap, pop, push } from "./Heap.js"
import { BYTE_TOKENS, chunksOf, countPairs, DEFAULT_SPECIAL, makeTokenizer, MAX_VOCAB, mergePair, pairKey } from "./Tokenizer.js"

export interface BpeOptions {
  /** 256 bytes + merges + special tokens. Training stops earlier when no pair occurs twice. */
  readonly vocabSize: number
  readonly special?: ReadonlyArray<string>
  readonly pattern?: Tokenizer["pattern"]
}

/** Each distinct chunk of the texts with how often it occurs, in order of first occurrence. */
export const chunkCounts = (texts: Iterable<string>, pattern: Tokenizer["pattern"]): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const text of texts) {
    for (const chunk of chunksOf(text, pattern)) counts.set(chunk, (counts.get(chunk) ?? 0) + 1)
  }
  return counts
}

interface PairCount {
  readonly count: number
  readonly key: number
}

/** Larger count first, then the smaller pair: the tie rule that makes the merges depend only on the text. */
const morePairs = (a: PairCount, b: PairCount): boolean => a.count > b.count || (a.count === b.count && a.key < b.key)

/** Trains the merges on `texts` (a corpus's train split) and returns the tokenizer. */
export const trainBpe = (texts: Iterable<string>, options: BpeOptions): Tokenizer => {
  const special = options.special ?? DEFAULT_SPECIAL
  const pattern = options.pattern ?? "gpt2"
  const wanted = options.vocabSize - BYTE_TOKENS - special.length
  if (wanted < 0 || options.vocabSize > MAX_VOCAB) {
    throw new RangeError(`vocabSize must be between ${BYTE_TOKENS + special.length} and ${MAX_VOCAB}, got ${options.vocabSize}`)
  }
  const utf8 = new TextEncoder()
  const words: Array<Array<number>> = []
  const weights: Array<number> = []
  for (const [chunk, count] of chunkCounts(texts, pattern)) {
    words.push(Array.from(utf8.encode(chunk)))
    weights.push(count)
  }

  // Pair counts over all chunks, and for each pair the chunks that (may) hold it.
  const counts = new Map<number, number>()
  const where = new Map<number, Set<number>>()
  const note = (ids: ReadonlyArray<number>, w: number, only?: number): void => {
    for (let i = 0; i + 1 < ids.length; i++) {
      if (only !== undefined && ids[i] !== only && ids[i + 1] !== only) continue
      const key = pairKey(ids[i]!, ids[i + 1]!)
      let set = where.get(key)
      if (set === undefined) where.set(key, (set = new Set()))
      set.add(w)
    }
  }
  words.forEach((ids, w) => {
    countPairs(ids, counts, weights[w])
    note(ids, w)
  })
  // Entries go stale when a pair's count changes; a popped entry is used only if it is still current.
  const heap = makeHeap(morePairs)
  for (const [key, count] of counts) push(heap, { count, key })

  const merges: Array<number> = []
  while (merges.length / 2 < wanted) {
    const top = pop(heap)
    if (top === undefined) break
    if (counts.get(top.key) !== top.count) continue // stale: the count changed since this entry was pushed
    if (top.count < 2) break
    const left = Math.floor(top.key / MAX_VOCAB)
    const right = top.key % MAX_VOCAB
    const id = BYTE_TOKENS + merges.length / 2
    merges.push(left, right)
    // Take the touched chunks' pairs out, merge, put them back: the difference is what changed.
    const delta = new Map<number, number>()
    for (const w of where.get(top.key) ?? []) {
      const ids = words[w]!
      const merged = mergePair(ids, left, right, id)
      if (merged.length === ids.length) continue
      countPairs(ids, delta, -weights[w]!)
      countPairs(merged, delta, weights[w])
      words[w] = merged
      note(merged, w, id)
    }
    where.delete(top.key)
    for (const [key, change] of delta) {
      if (change === 0) continue
      const count = (counts.get(key) ?? 0) + change
      if (count > 0) {
        counts.set(key, count)
        push(heap, { count, key })
      } else {
        counts.delete(key)
      }
    }
  }
  return makeTokenizer("bpe", Int32Array.from(merges), special, pattern)
}
