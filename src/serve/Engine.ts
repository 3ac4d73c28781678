/**
 * Text in, text out for `serve`: one Distillery language model, its prompts encoded, continued token by
 * token through a KV-cache decoder, and the new text handed out in pieces as it becomes final. A piece
 * never ends inside a UTF-8 character or inside what may be the start of a stop string, so the pieces of
 * a stream concatenate to exactly the text of the same request without streaming. Each choice draws from
 * its own Rng seeded from the request's seed: the same request and seed give the same text.
 *
 * Log-probabilities are the model's own, log-softmax of its logits at temperature 1, whatever the
 * sampler's settings (they change what is drawn, not how it is scored), as the generate node records them.
 */
import type { LanguageModel, Tokenizer } from "../domain/Artifact.js"
import { deriveSeed, makeRng } from "../domain/Random.js"
import { makeDecoder } from "../generation/Decode.js"
import type { SamplerSettings } from "../generation/Sampler.js"
import { sample } from "../generation/Sampler.js"
import type { Transformer } from "../models/Transformer.js"
import { transformerFromWeights } from "../models/Transformer.js"
import type { TransformerSpec } from "../models/TransformerSpec.js"
import { decodeTransformerSpec } from "../models/TransformerSpec.js"
import { encode, vocabularyOf } from "../tokenizer/Tokenizer.js"

/** One alternative at a position: a token, its text (`bytes:\xNN` when not valid UTF-8) and bytes. */
export interface TokenLogProb {
  readonly token: string
  readonly logprob: number
  readonly bytes: ReadonlyArray<number>
}

/** One generated token and, when asked for, the most likely tokens at its position. */
export interface GeneratedToken extends TokenLogProb {
  readonly id: number
  /** Character offset of the token's text in the choice's text. */
  readonly textOffset: number
  readonly top: ReadonlyArray<TokenLogProb>
}

/** A piece of one choice's text, with the tokens that start in it. */
export interface Piece {
  readonly text: string
  readonly tokens: ReadonlyArray<GeneratedToken>
}

export interface ChoiceSettings {
  readonly prompt: Int32Array
  readonly maxTokens: number
  readonly sampler: SamplerSettings
  readonly seed: number
  /** Strings that end the text (not included in it). */
  readonly stop: ReadonlyArray<string>
  /** How many alternatives per position to report (0: none, and no log-probs at all when `logprobs` is false). */
  readonly topLogprobs: number
  readonly logprobs: boolean
  /** Polled between tokens: true stops generating (the client went away). */
  readonly cancelled?: () => boolean
}

export interface ChoiceEnd {
  readonly finishReason: "stop" | "length"
  /** Tokens sampled, an `<eos>` that ended the text included. */
  readonly completionTokens: number
}

export interface Engine {
  readonly spec: TransformerSpec
  readonly tokenizer: Tokenizer
  /** The prompt's tokens: the text's, or the token documents follow in training when it is empty. */
  readonly encodePrompt: (text: string) => Int32Array
  /** Continues one prompt; `onPiece` gets each piece of final text as soon as it is known. */
  readonly generate: (settings: ChoiceSettings, onPiece: (piece: Piece) => void) => Promise<ChoiceEnd>
  readonly dispose: () => void
}

/** The seed of choice `index` of a request seeded `seed`. */
export const choiceSeed = (seed: number, index: number): number => deriveSeed(seed, "choice", index)

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const lenientUtf8 = new TextDecoder("utf-8", { ignoreBOM: true })
const utf8 = new TextEncoder()

/** A token's text as OpenAI writes it: the UTF-8 text, or `bytes:\xe2\x80` for bytes that are not whole characters. */
export const tokenText = (bytes: Uint8Array): string => {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return `bytes:${Array.from(bytes, (b) => `\\x${b.toString(16).padStart(2, "0")}`).join("")}`
  }
}

/** How many bytes at the end of `bytes[0, end)` are an unfinished UTF-8 character (0 when it ends whole). */
const unfinishedTail = (bytes: ArrayLike<number>, end: number): number => {
  for (let back = 1; back <= Math.min(3, end); back++) {
    const b = bytes[end - back]!
    if ((b & 0xc0) === 0x80) continue // a continuation byte: look further back for the lead
    const need = (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 ? 4 : 1
    return need > back ? back : 0
  }
  return 0
}

/** Where the first stop string starts in `bytes` (searching from `from`), or -1. */
const findStop = (bytes: ArrayLike<number>, stops: ReadonlyArray<Uint8Array>, from: number): number => {
  let first = -1
  for (const s of stops) {
    for (let i = Math.max(0, from); i + s.length <= bytes.length; i++) {
      if (first >= 0 && i >= first) break
      let j = 0
      while (j < s.length && bytes[i + j] === s[j]) j++
      if (j === s.length) {
        first = i
        break
      }
    }
  }
  return first
}

/** The length of the longest end of `bytes` that begins some stop string: held back until it is known not to be one. */
const stopPrefixTail = (bytes: ArrayLike<number>, stops: ReadonlyArray<Uint8Array>): number => {
  let longest = 0
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, bytes.length); k > longest; k--) {
      let j = 0
      while (j < k && bytes[bytes.length - k + j] === s[j]) j++
      if (j === k) {
        longest = k
        break
      }
    }
  }
  return longest
}

/** (V) log-softmax of one row of logits, in float64. */
const logSoftmax = (logits: Float32Array): Float64Array => {
  let max = -Infinity
  for (const x of logits) max = Math.max(max, x)
  let total = 0
  for (const x of logits) total += Math.exp(x - max)
  const logZ = max + Math.log(total)
  return Float64Array.from(logits, (x) => x - logZ)
}

/** The `k` most likely token ids of a row of log-probs, most likely first (ties by id). */
const topIds = (logp: Float64Array, k: number): Array<number> => {
  const order = Array.from(logp.keys()).sort((a, b) => logp[b]! - logp[a]! || a - b)
  return order.slice(0, k)
}

export const makeEngine = (lm: LanguageModel): Engine => {
  const spec = decodeTransformerSpec(lm.spec)
  const tokenizer = lm.tokenizer
  const net: Transformer = transformerFromWeights(spec, lm.weights)
  const vocab = vocabularyOf(tokenizer)
  const eos = tokenizer.special["<eos>"]
  // Training puts <eos> before every document (tokenizer/Pack.ts): an empty prompt starts a document.
  const start = eos ?? tokenizer.special["<bos>"] ?? encode(tokenizer, "\n")[0]!

  const alternative = (id: number, logp: Float64Array): TokenLogProb => ({
    token: tokenText(vocab[id]!),
    logprob: logp[id]!,
    bytes: Array.from(vocab[id]!)
  })

  const generate = async (s: ChoiceSettings, onPiece: (piece: Piece) => void): Promise<ChoiceEnd> => {
    const stops = s.stop.filter((x) => x.length > 0).map((x) => utf8.encode(x))
    const maxStop = stops.reduce((m, x) => Math.max(m, x.length), 0)
    const rng = makeRng(s.seed)
    const bytes: Array<number> = []
    const tokens: Array<GeneratedToken & { readonly start: number }> = []
    let emittedBytes = 0
    let emittedTokens = 0
    let emittedChars = 0
    let sampled = 0
    /** Hands out bytes [emittedBytes, end) and the tokens that start there. */
    const emit = (end: number) => {
      if (end <= emittedBytes) return
      const text = lenientUtf8.decode(Uint8Array.from(bytes.slice(emittedBytes, end)))
      let n = emittedTokens
      while (n < tokens.length && tokens[n]!.start < end) n++
      const fresh = tokens.slice(emittedTokens, n).map(({ start, ...t }) => ({
        ...t,
        textOffset: emittedChars + lenientUtf8.decode(Uint8Array.from(bytes.slice(emittedBytes, start))).length
      }))
      emittedBytes = end
      emittedTokens = n
      emittedChars += text.length
      onPiece({ text, tokens: fresh })
    }
    const finish = (finishReason: ChoiceEnd["finishReason"]): ChoiceEnd => {
      emit(bytes.length)
      return { finishReason, completionTokens: sampled }
    }
    const room = spec.context - s.prompt.length
    const maxTokens = Math.min(s.maxTokens, room)
    if (maxTokens < 1) return finish("length")
    const decoder = makeDecoder(net)
    try {
      let logits = decoder.prefill([s.prompt]) // (1, V)
      for (;;) {
        const row = (await logits.data()) as Float32Array // (V) next-token logits
        logits.dispose()
        const id = sample(row, s.sampler, rng)
        sampled++
        if (id === eos) return finish("stop")
        if (s.logprobs) {
          const logp = logSoftmax(row)
          tokens.push({ ...alternative(id, logp), id, textOffset: 0, start: bytes.length, top: topIds(logp, s.topLogprobs).map((t) => alternative(t, logp)) })
        } else {
          tokens.push({ token: "", logprob: 0, bytes: [], id, textOffset: 0, start: bytes.length, top: [] })
        }
        const before = bytes.length
        for (const b of vocab[id]!) bytes.push(b)
        const cut = stops.length > 0 ? findStop(bytes, stops, before - maxStop + 1) : -1
        if (cut >= 0) {
          bytes.length = cut
          while (tokens.length > 0 && tokens[tokens.length - 1]!.start >= cut) tokens.pop()
          return finish("stop")
        }
        if (sampled >= maxTokens) return finish("length")
        if (s.cancelled?.() === true) return finish("stop")
        const end = bytes.length - stopPrefixTail(bytes, stops)
        emit(end - unfinishedTail(bytes, end))
        logits = decoder.step([id]) // (1, V)
      }
    } finally {
      decoder.dispose()
    }
  }

  return {
    spec,
    tokenizer,
    encodePrompt: (text) => {
      const ids = encode(tokenizer, text)
      return Int32Array.from(ids.length > 0 ? ids : [start])
    },
    generate,
    dispose: () => net.dispose()
  }
}
