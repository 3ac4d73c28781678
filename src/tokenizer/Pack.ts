/**
 * Packs a corpus split into fixed-length training sequences, as nanoGPT and GPT-2 do: every document
 * is encoded and followed by `<eos>` (when the tokenizer has it), the documents are concatenated in
 * split order into one stream, and the stream is cut into N windows of T + 1 tokens that overlap by
 * one: window i's inputs are stream[iT .. iT + T), its targets stream[iT + 1 .. iT + T], so each
 * token is a target exactly once. The tail that does not fill a window is dropped. For
 * prompt/completion documents the prompt's tokens are targets of -1 (not counted by the loss), so a
 * model learns the completions only. A corpus with per-document loss weights (a multi-task corpus of
 * lm_tasks) also gives each counted target its document's weight (`weights`, 0 where not counted).
 *
 * `packScored` packs a model's scored samples (a Generations artifact with `scores`) instead: one
 * sequence per sample, prompt + generated tokens, padded, its targets counted on the generated tokens
 * only, each with the scorer's top-k + tail log-probs at that position.
 */
import type { Generations, TextCorpus, Tokenizer } from "../domain/Artifact.js"
import { encode, vocabularyOf } from "./Tokenizer.js"

export interface PackedTokens {
  /** Tokens per sequence. */
  readonly length: number
  /** (N, T) input ids, row-major. */
  readonly inputs: Int32Array
  /** (N, T) the next token of each input, or -1 where it is not counted (a prompt token). */
  readonly targets: Int32Array
  /**
   * (N, T) per target, the loss weight of the document the target token belongs to, 0 where the target
   * is not counted; only when the corpus has per-document `weights` (absent: every counted target 1).
   */
  readonly weights?: Float32Array
}

/** Sequences in a pack. */
export const packedRows = (p: PackedTokens): number => p.inputs.length / p.length

/** The split's documents as one token stream and, per token, whether it counts as a target. */
export const tokenStream = (
  tokenizer: Tokenizer,
  corpus: TextCorpus,
  split: keyof TextCorpus["splits"]
): { readonly ids: Array<number>; readonly counted: Array<boolean>; readonly weights?: Array<number> } => {
  const eos = tokenizer.special["<eos>"]
  const ids: Array<number> = []
  const counted: Array<boolean> = []
  const weights: Array<number> | undefined = corpus.weights !== undefined ? [] : undefined
  let weight = 1
  const add = (tokens: ReadonlyArray<number>, count: boolean) => {
    for (const t of tokens) {
      ids.push(t)
      counted.push(count)
      weights?.push(weight)
    }
  }
  for (const d of corpus.splits[split]) {
    if (weights !== undefined) weight = corpus.weights![d] ?? 1
    if (corpus.prompts !== undefined && corpus.completions !== undefined) {
      add(encode(tokenizer, corpus.prompts[d]!), false)
      add(encode(tokenizer, corpus.completions[d]!), true)
    } else {
      add(encode(tokenizer, corpus.texts[d]!), true)
    }
    if (eos !== undefined) add([eos], true)
  }
  return { ids, counted, ...(weights !== undefined ? { weights } : {}) }
}

/** Cuts a stream into (N, T) inputs and targets (and, with per-token weights, target weights); N = floor((tokens - 1) / T). */
export const packStream = (
  stream: { readonly ids: ReadonlyArray<number>; readonly counted: ReadonlyArray<boolean>; readonly weights?: ReadonlyArray<number> },
  T: number
): PackedTokens => {
  const n = Math.max(0, Math.floor((stream.ids.length - 1) / T))
  const inputs = new Int32Array(n * T)
  const targets = new Int32Array(n * T)
  const weights = stream.weights !== undefined ? new Float32Array(n * T) : undefined
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < T; t++) {
      const at = i * T + t
      inputs[at] = stream.ids[at]!
      targets[at] = stream.counted[at + 1] ? stream.ids[at + 1]! : -1
      if (weights !== undefined && stream.counted[at + 1]) weights[at] = stream.weights![at + 1]!
    }
  }
  return { length: T, inputs, targets, ...(weights !== undefined ? { weights } : {}) }
}

export const packCorpus = (tokenizer: Tokenizer, corpus: TextCorpus, split: keyof TextCorpus["splits"], T: number): PackedTokens =>
  packStream(tokenStream(tokenizer, corpus, split), T)

/**
 * UTF-8 bytes each target stands for, 0 where it is not counted and for special tokens (they are not
 * text): the denominator of bits per byte, so the measure covers exactly the text that was scored.
 */
export const targetBytes = (tokenizer: Tokenizer, targets: Int32Array): Int32Array => {
  const vocab = vocabularyOf(tokenizer)
  const special = new Set(Object.values(tokenizer.special))
  return Int32Array.from(targets, (id) => (id < 0 || special.has(id) ? 0 : vocab[id]!.length))
}

/** Per position of a pack of scored samples: the scorer's distribution over the next token. */
export interface PackedScores {
  /** Token ids kept per position. */
  readonly k: number
  /** (N, T, k) the scorer's top-k token ids; 0 .. k - 1 where the target is not counted. */
  readonly indices: Int32Array
  /** (N, T, k) their log-probs; -log V (uniform) where the target is not counted. */
  readonly logProbs: Float32Array
  /** (N, T) log of the mass of the V - k other tokens (-Infinity when k = V); uniform where not counted. */
  readonly tailLogProb: Float32Array
}

/** A pack of scored samples and what the cut to T left out. */
export interface ScoredPack {
  readonly pack: PackedTokens
  readonly scores: PackedScores
  /** Samples without a generated token or without a prompt token before it: not packed. */
  readonly skipped: number
  /** Generated tokens past a sequence's end, not trained on. */
  readonly cutTokens: number
}

/**
 * One sequence of T per sample of `g` (which must have `scores`), in row order: its prompt's last
 * tokens then its generated tokens, padded with `<pad>` (else 0) after the end. Target t is the next
 * token where that token was generated (-1 at the prompt and the padding), and carries the score of
 * that generated position. A sample longer than T + 1 tokens keeps max(1, T + 1 - generated) prompt
 * tokens (the scorer also dropped a long prompt's first tokens) and its first T + 1 - kept generated
 * tokens. The filler distribution at uncounted positions is uniform, so every divergence stays finite
 * there (the loss masks it).
 */
export const packScored = (g: Generations, T: number): ScoredPack => {
  const scores = g.scores
  if (scores === undefined) throw new Error("packScored: the generations have no scores")
  const V = g.tokenizer.vocabSize
  const k = scores.k
  const pad = g.tokenizer.special["<pad>"] ?? 0
  const G = g.promptIds.length
  const rows: Array<number> = []
  let skipped = 0
  for (let r = 0; r < G; r++) {
    const prompt = g.promptOffsets[r + 1]! - g.promptOffsets[r]!
    const generated = g.offsets[r + 1]! - g.offsets[r]!
    if (prompt === 0 || generated === 0) skipped++
    else rows.push(r)
  }
  const N = rows.length
  const inputs = new Int32Array(N * T).fill(pad)
  const targets = new Int32Array(N * T).fill(-1)
  const indices = new Int32Array(N * T * k)
  const logProbs = new Float32Array(N * T * k).fill(-Math.log(V))
  const tailLogProb = new Float32Array(N * T).fill(k === V ? -Infinity : Math.log((V - k) / V))
  for (let at = 0; at < N * T; at++) for (let j = 0; j < k; j++) indices[at * k + j] = j
  let cutTokens = 0
  rows.forEach((r, i) => {
    const p0 = g.promptOffsets[r]!
    const p1 = g.promptOffsets[r + 1]!
    const o0 = g.offsets[r]!
    const generated = g.offsets[r + 1]! - o0
    const kept = Math.min(p1 - p0, Math.max(1, T + 1 - generated))
    const used = Math.min(generated, T + 1 - kept)
    cutTokens += generated - used
    const sequence = [...g.promptTokens.subarray(p1 - kept, p1), ...g.tokens.subarray(o0, o0 + used)]
    for (let t = 0; t + 1 < sequence.length; t++) {
      const at = i * T + t
      inputs[at] = sequence[t]!
      if (t + 1 < kept) continue
      const p = o0 + t + 1 - kept // the generated position this target is, flat in `tokens` order
      targets[at] = sequence[t + 1]!
      indices.set(scores.indices.subarray(p * k, (p + 1) * k), at * k)
      logProbs.set(scores.logProbs.subarray(p * k, (p + 1) * k), at * k)
      tailLogProb[at] = scores.tailLogProb[p]!
    }
  })
  return { pack: { length: T, inputs, targets }, scores: { k, indices, logProbs, tailLogProb }, skipped, cutTokens }
}
