/**
 * Packs a corpus split into fixed-length training sequences, as nanoGPT and GPT-2 do: every document
 * is encoded and followed by `<eos>` (when the tokenizer has it), the documents are concatenated in
 * split order into one stream, and the stream is cut into N windows of T + 1 tokens that overlap by
 * one: window i's inputs are stream[iT .. iT + T), its targets stream[iT + 1 .. iT + T], so each
 * token is a target exactly once. The tail that does not fill a window is dropped. For
 * prompt/completion documents the prompt's tokens are targets of -1 (not counted by the loss), so a
 * model learns the completions only.
 */
import type { TextCorpus, Tokenizer } from "../domain/Artifact.js"
import { encode, vocabularyOf } from "./Tokenizer.js"

export interface PackedTokens {
  /** Tokens per sequence. */
  readonly length: number
  /** (N, T) input ids, row-major. */
  readonly inputs: Int32Array
  /** (N, T) the next token of each input, or -1 where it is not counted (a prompt token). */
  readonly targets: Int32Array
}

/** Sequences in a pack. */
export const packedRows = (p: PackedTokens): number => p.inputs.length / p.length

/** The split's documents as one token stream and, per token, whether it counts as a target. */
export const tokenStream = (
  tokenizer: Tokenizer,
  corpus: TextCorpus,
  split: keyof TextCorpus["splits"]
): { readonly ids: Array<number>; readonly counted: Array<boolean> } => {
  const eos = tokenizer.special["<eos>"]
  const ids: Array<number> = []
  const counted: Array<boolean> = []
  const add = (tokens: ReadonlyArray<number>, count: boolean) => {
    for (const t of tokens) {
      ids.push(t)
      counted.push(count)
    }
  }
  for (const d of corpus.splits[split]) {
    if (corpus.prompts !== undefined && corpus.completions !== undefined) {
      add(encode(tokenizer, corpus.prompts[d]!), false)
      add(encode(tokenizer, corpus.completions[d]!), true)
    } else {
      add(encode(tokenizer, corpus.texts[d]!), true)
    }
    if (eos !== undefined) add([eos], true)
  }
  return { ids, counted }
}

/** Cuts a stream into (N, T) inputs and targets; N = floor((tokens - 1) / T). */
export const packStream = (stream: { readonly ids: ReadonlyArray<number>; readonly counted: ReadonlyArray<boolean> }, T: number): PackedTokens => {
  const n = Math.max(0, Math.floor((stream.ids.length - 1) / T))
  const inputs = new Int32Array(n * T)
  const targets = new Int32Array(n * T)
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < T; t++) {
      const at = i * T + t
      inputs[at] = stream.ids[at]!
      targets[at] = stream.counted[at + 1] ? stream.ids[at + 1]! : -1
    }
  }
  return { length: T, inputs, targets }
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
