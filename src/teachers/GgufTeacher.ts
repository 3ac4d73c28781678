/**
 * The teacher interface over a GGUF model file, run in-process by llama.cpp (node-llama-cpp's prebuilt
 * CPU binary). Every position is evaluated with `controlledEvaluate` asking for the next token's
 * probabilities over the whole vocabulary; Distillery's own seeded sampler (generation/Sampler.ts)
 * draws from them, so a row's tokens depend on its prompt, its seed and the file only, and the
 * per-position top-k + tail log-probs come from the same distribution at no extra cost.
 * When the file's vocabulary is a Distillery tokenizer, prompts come as its tokens and samples carry
 * tokens and scores; otherwise prompts are tokenized by llama.cpp and samples are text only.
 * Rows run one after another on one sequence of one context (the model is loaded for each call).
 */
import { statSync } from "node:fs"
import { availableParallelism } from "node:os"
import { Effect } from "effect"
import type { ControlledEvaluateInputItem, Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp"
import type { GgufTeacherFile } from "../domain/Artifact.js"
import { makeRng } from "../domain/Random.js"
import { sample as draw } from "../generation/Sampler.js"
import { decode } from "../tokenizer/Tokenizer.js"
import type { PositionScores, SampleOutcome, SampleSettings, ScoreSequence, Teacher, TeacherPrompt, TeacherSample } from "./Teacher.js"
import { TeacherError } from "./Teacher.js"

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

let llamaLoaded: Promise<Llama> | undefined

/** llama.cpp through node-llama-cpp's prebuilt CPU binary, loaded once per process; building from source is never attempted. */
export const loadLlama = (): Promise<Llama> =>
  (llamaLoaded ??= import("node-llama-cpp").then((m) => m.getLlama({ gpu: false, build: "never", logLevel: m.LlamaLogLevel.error })))

/**
 * The machine's cores less one, at most 8: llama.cpp's threads spin while they wait, and with every
 * core taken Node's own thread, which hands them each token, waits behind them (300 ms a token on 2 cores).
 */
export const defaultThreads = (): number => Math.max(1, Math.min(8, availableParallelism() - 1))

/** The model, a context for one sequence and that sequence, for the length of one call. */
interface Session {
  readonly model: LlamaModel
  readonly context: LlamaContext
  readonly sequence: LlamaContextSequence
  readonly V: number
}

const open = (file: GgufTeacherFile, name: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async (): Promise<Session> => {
        // The cache key holds the content's hash as the run started; a file rewritten since is caught by its size.
        const { size } = statSync(file.path)
        if (size !== file.size) {
          throw new Error(`${file.path} changed since its gguf_teacher node described it (${file.size} bytes, now ${size}); run the pipeline again so that the node sees the new file`)
        }
        const llama = await loadLlama().catch((e: unknown) => {
          throw new Error(`node-llama-cpp cannot load llama.cpp here (${message(e)}); it needs its prebuilt binary for ${process.platform}-${process.arch}`)
        })
        const model = await llama.loadModel({ modelPath: file.path })
        try {
          // One slot more than a sequence may hold: at exactly the context, llama.cpp's last position drifts by ~1e-3.
          const size = file.contextSize + 1
          const kv = file.kvCache === "f32" ? "F32" : "F16"
          const context = await model.createContext({
            contextSize: size,
            batchSize: Math.min(size, 512),
            flashAttention: false,
            experimentalKvCacheKeyType: kv,
            experimentalKvCacheValueType: kv,
            threads: file.threads ?? defaultThreads()
          })
          return { model, context, sequence: context.getSequence(), V: file.vocabSize }
        } catch (e) {
          await model.dispose()
          throw e
        }
      },
      catch: (cause) => new TeacherError({ teacher: name, message: `cannot load ${file.path}: ${message(cause)}`, cause })
    }),
    (s) => Effect.promise(async () => {
      await s.context.dispose()
      await s.model.dispose()
    })
  )

/** (V) log-probs from node-llama-cpp's token -> probability map (-Infinity where it gives none). */
const logProbsOf = (probabilities: ReadonlyMap<Token, number> | undefined, V: number, at: number): Float64Array => {
  if (probabilities === undefined) throw new Error(`llama.cpp returned no probabilities at position ${at}`)
  const out = new Float64Array(V).fill(-Infinity)
  for (const [token, p] of probabilities) if (token < V) out[token] = Math.log(p)
  return out
}

/** The k largest of (V) log-probs, most likely first (ties by id), and the tail's log-prob from float64 mass. */
export const topOf = (lp: Float64Array, k: number): { readonly ids: Array<number>; readonly tail: number } => {
  const ids: Array<number> = []
  for (let i = 0; i < lp.length; i++) {
    if (ids.length === k && !(lp[i]! > lp[ids[k - 1]!]!)) continue
    let j = ids.length === k ? k - 1 : ids.length
    while (j > 0 && lp[ids[j - 1]!]! < lp[i]!) j--
    ids.splice(j, 0, i)
    if (ids.length > k) ids.pop()
  }
  let mass = 0
  for (const i of ids) mass += Math.exp(lp[i]!)
  return { ids, tail: k >= lp.length || mass >= 1 ? -Infinity : Math.log1p(-mass) }
}

/** Accumulates per-position top-k + tail rows into PositionScores. */
const collector = (k: number) => {
  const indices: Array<number> = []
  const logProbs: Array<number> = []
  const tails: Array<number> = []
  const own: Array<number> = []
  return {
    add: (lp: Float64Array, token: number) => {
      const { ids, tail } = topOf(lp, k)
      for (let j = 0; j < k; j++) {
        indices.push(ids[j] ?? 0)
        logProbs.push(ids[j] !== undefined ? lp[ids[j]!]! : -Infinity)
      }
      tails.push(tail)
      own.push(lp[token]!)
    },
    result: (): PositionScores => ({
      k,
      indices: Int32Array.from(indices),
      logProbs: Float32Array.from(logProbs),
      tailLogProb: Float32Array.from(tails),
      tokenLogProb: Float32Array.from(own)
    })
  }
}

/** Each token of the list, the ones from `from` on asking for the next token's probabilities. */
const items = (tokens: ArrayLike<number>, from: number): Array<ControlledEvaluateInputItem> =>
  Array.from(tokens, (t, i): ControlledEvaluateInputItem => (i >= from ? [t as Token, { generateNext: { probabilities: true } }] : (t as Token)))

export const make = (file: GgufTeacherFile, name: string = file.path): Teacher => {
  const vocabulary = file.tokenizer
  const limit = file.contextSize
  const checkTokens = (tokens: ArrayLike<number>, what: string) => {
    for (const t of Array.from(tokens)) if (!(t >= 0 && t < file.vocabSize)) throw new Error(`${what}: token ${t} is outside the file's vocabulary of ${file.vocabSize}`)
  }

  const sampleOne = async (s: Session, prompt: TeacherPrompt, settings: SampleSettings): Promise<TeacherSample> => {
    let input: Array<number>
    if (prompt.tokens !== undefined && vocabulary !== undefined) input = Array.from(prompt.tokens)
    else {
      input = s.model.tokenize(prompt.text, false) as Array<number>
      if (file.bos !== undefined) input.unshift(file.bos)
      if (input.length === 0) input = [file.bos ?? file.eos ?? 0]
    }
    checkTokens(input, `prompt '${prompt.id}'`)
    // A prompt that fills the context keeps its last tokens, leaving room for one new token.
    if (input.length >= limit) input = input.slice(input.length - (limit - 1))
    const rng = makeRng(prompt.seed)
    const k = Math.min(settings.topLogprobs, s.V)
    const top = k > 0 && vocabulary !== undefined ? collector(k) : undefined
    const textOf = (ids: ReadonlyArray<number>) => (vocabulary !== undefined ? decode(vocabulary, ids) : s.model.detokenize(ids as Array<Token>))
    const tokens: Array<number> = []
    const logProbs: Array<number> = []
    let finishReason: TeacherSample["finishReason"] | undefined = settings.maxNewTokens < 1 ? "length" : undefined
    await s.sequence.clearHistory()
    let evaluated = finishReason === undefined ? await s.sequence.controlledEvaluate(items(input, input.length - 1)) : []
    while (finishReason === undefined) {
      const lp = logProbsOf(evaluated[evaluated.length - 1]?.next.probabilities, s.V, input.length + tokens.length - 1)
      const token = draw(lp, settings, rng)
      tokens.push(token)
      logProbs.push(lp[token]!)
      top?.add(lp, token)
      const n = tokens.length
      finishReason = token === file.eos || (settings.stop.length > 0 && settings.stop.some((stop) => textOf(tokens).includes(stop)))
        ? "stop"
        : n >= settings.maxNewTokens
        ? "length"
        : input.length + n >= limit
        ? "context"
        : undefined
      if (finishReason === undefined) evaluated = await s.sequence.controlledEvaluate(items([token], 0))
    }
    return {
      text: textOf(tokens),
      ...(vocabulary !== undefined ? { tokens: Int32Array.from(tokens) } : {}),
      tokenLogProbs: Float32Array.from(logProbs),
      finishReason,
      usage: { input: input.length, output: tokens.length },
      ...(top !== undefined ? { top: top.result() } : {})
    }
  }

  const sample = (prompts: ReadonlyArray<TeacherPrompt>, settings: SampleSettings) =>
    Effect.scoped(
      Effect.gen(function* () {
        const s = yield* open(file, name)
        return yield* Effect.tryPromise({
          try: async () => {
            const out: Array<SampleOutcome> = []
            for (const prompt of prompts) {
              out.push({ _tag: "Sampled", sample: await sampleOne(s, prompt, settings) })
              settings.onProgress?.(out.length, prompts.length)
            }
            return out
          },
          catch: (cause) => new TeacherError({ teacher: name, message: `sampling failed: ${message(cause)}`, cause })
        })
      })
    )

  const score = (sequences: ReadonlyArray<ScoreSequence>, topK: number) =>
    Effect.scoped(
      Effect.gen(function* () {
        const s = yield* open(file, name)
        return yield* Effect.tryPromise({
          try: async () => {
            const scores = collector(Math.min(topK, s.V))
            for (const [i, { prompt, tokens }] of sequences.entries()) {
              if (tokens.length === 0) continue
              if (prompt.length === 0) throw new Error(`row ${i}: a continuation needs at least one prompt token before it`)
              if (tokens.length >= limit) throw new Error(`row ${i}: ${tokens.length} continuation tokens do not fit the context of ${limit}`)
              checkTokens(prompt, `row ${i}`)
              checkTokens(tokens, `row ${i}`)
              // A sequence longer than the context loses its first prompt tokens.
              const kept = Math.min(prompt.length, limit - tokens.length)
              const input = [...prompt.subarray(prompt.length - kept), ...tokens.subarray(0, tokens.length - 1)]
              await s.sequence.clearHistory()
              const evaluated = await s.sequence.controlledEvaluate(items(input, kept - 1))
              for (let j = 0; j < tokens.length; j++) scores.add(logProbsOf(evaluated[kept - 1 + j]?.next.probabilities, s.V, kept - 1 + j), tokens[j]!)
            }
            return scores.result()
          },
          catch: (cause) => new TeacherError({ teacher: name, message: `scoring failed: ${message(cause)}`, cause })
        })
      })
    )

  return { name, vocabulary, sample, score: (sequences, topK) => score(sequences, topK) }
}
