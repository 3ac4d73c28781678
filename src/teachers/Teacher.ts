/**
 * The one teacher interface: `sample(prompts, settings)` and `score(sequences, ...)`, whatever the source.
 * A source is one implementation of `Teacher` (as one SQL client interface has a layer per database):
 * a Distillery LanguageModel (DistilleryTeacher.ts), an OpenAI-compatible endpoint (HttpTeacher.ts) and a
 * GGUF file run in-process by llama.cpp (GgufTeacher.ts), each a `make` returning the same record.
 * Generation (nodes/lm/generate.ts) sees only this interface.
 */
import type { Effect } from "effect"
import { Schema } from "effect"
import type { Tokenizer } from "../domain/Artifact.js"

/** One row to sample: the prompt as text, and as tokens when the caller knows the teacher's vocabulary. */
export interface TeacherPrompt {
  readonly id: string
  readonly text: string
  /** The prompt in the teacher's vocabulary; a source with a vocabulary of its own needs it. */
  readonly tokens?: Int32Array
  /** The row's seed: it alone decides the row's draws. */
  readonly seed: number
}

export interface SampleSettings {
  /** 0 is greedy. */
  readonly temperature: number
  /** 0: all tokens. */
  readonly topK: number
  readonly topP: number
  readonly minP: number
  readonly maxNewTokens: number
  /** A row ends once its generated text contains one of these (kept in the text). */
  readonly stop: ReadonlyArray<string>
  /** Alternatives per generated position to return (0: none). */
  readonly topLogprobs: number
  /** Rows per forward pass, where the source batches. */
  readonly batchSize: number
  readonly onProgress?: (done: number, total: number) => void
}

/**
 * Per-position top-k + tail log-probs over P positions: the k most likely next tokens (by id where the
 * vocabulary is known, else by their text), their log-probs, and the log of the mass left to the rest.
 */
export interface PositionScores {
  readonly k: number
  /** (P, k) token ids, most likely first (absent when the source names tokens only by text). */
  readonly indices?: Int32Array
  /** (P, k) token texts, when the source names tokens by text ("" where fewer than k came back). */
  readonly texts?: ReadonlyArray<ReadonlyArray<string>>
  /** (P, k) log-probs (-Infinity where fewer than k came back). */
  readonly logProbs: Float32Array
  /** (P) log(1 - sum of the k probabilities): the tail bucket. */
  readonly tailLogProb: Float32Array
  /** (P) the log-prob of the token actually there. */
  readonly tokenLogProb: Float32Array
}

export interface TeacherSample {
  readonly text: string
  /** The generated tokens, when the source's vocabulary is known. */
  readonly tokens?: Int32Array
  /** (P) the source's log-prob of each generated token, when it reports them. */
  readonly tokenLogProbs?: Float32Array
  readonly finishReason: "stop" | "length" | "context"
  /** Per generated position top-k + tail, when asked for (`topLogprobs` > 0) and the source gives them. */
  readonly top?: PositionScores
  /** Tokens in and out as the source counted them, when it does. */
  readonly usage?: { readonly input: number; readonly output: number }
}

/** One prompt's outcome: its sample, or the error that remained after the source's retries. */
export type SampleOutcome =
  | { readonly _tag: "Sampled"; readonly sample: TeacherSample }
  | { readonly _tag: "Failed"; readonly error: string }

/** A sequence to score teacher-forced: the prompt, then the tokens whose positions are scored. */
export interface ScoreSequence {
  readonly prompt: Int32Array
  readonly tokens: Int32Array
}

/** What a teacher could not do at all (as opposed to one prompt failing). */
export class TeacherError extends Schema.TaggedError<TeacherError>()("TeacherError", {
  teacher: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export interface Teacher {
  /** Who answers, in words: "LanguageModel" or the endpoint's URL and model. */
  readonly name: string
  /** The tokenizer of the teacher's tokens, when known (undefined: text only). */
  readonly vocabulary: Tokenizer | undefined
  /** One outcome per prompt, in order. */
  readonly sample: (prompts: ReadonlyArray<TeacherPrompt>, settings: SampleSettings) => Effect.Effect<ReadonlyArray<SampleOutcome>, TeacherError>
  /** Top-k + tail log-probs at every position of `tokens` (flat over the sequences, in order). */
  readonly score: (sequences: ReadonlyArray<ScoreSequence>, topK: number, batchSize: number) => Effect.Effect<PositionScores, TeacherError>
}

/** log(1 - sum exp(logProbs)), clamped: the tail bucket's log-probability. */
export const tailOf = (logProbs: ReadonlyArray<number>): number => {
  let mass = 0
  for (const lp of logProbs) mass += Math.exp(lp)
  return mass >= 1 ? -Infinity : Math.log1p(-mass)
}

/** How many prompts failed, and what fraction of all they are. */
export const failureShare = (outcomes: ReadonlyArray<SampleOutcome>): { readonly failed: number; readonly fraction: number } => {
  const failed = outcomes.filter((o) => o._tag === "Failed").length
  return { failed, fraction: outcomes.length > 0 ? failed / outcomes.length : 0 }
}
