/**
 * The request bodies `serve` accepts, checked field by field into the settings a generation needs, and
 * the errors it answers with, in OpenAI's shape `{ error: { message, type, param, code } }`. A field of
 * the wrong type or out of range names itself in `param`; a field this server does not know is refused
 * (OpenAI's own API does the same), except a few it can honour by ignoring them (`user`, zero penalties).
 */
import { Schema } from "effect"
import type { ChatMessage } from "./ChatTemplate.js"
import { chatMessageOf } from "./ChatTemplate.js"

/** An answer other than 200: the HTTP status and the fields of OpenAI's error body. */
export class ApiError extends Schema.TaggedError<ApiError>()("ApiError", {
  status: Schema.Number,
  message: Schema.String,
  param: Schema.NullOr(Schema.String),
  code: Schema.NullOr(Schema.String),
  type: Schema.String
}) {}

export const apiError = (status: number, message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError({ status, message, param, code, type: status >= 500 ? "server_error" : "invalid_request_error" })

/** OpenAI's error body. */
export const errorBody = (e: ApiError) => ({ error: { message: e.message, type: e.type, param: e.param, code: e.code } })

/** What every generation request carries, checked. */
export interface SamplingRequest {
  readonly model: string
  readonly maxTokens: number | undefined
  readonly temperature: number
  readonly topP: number
  readonly topK: number
  readonly minP: number
  readonly seed: number | undefined
  readonly n: number
  readonly stop: ReadonlyArray<string>
  readonly stream: boolean
  readonly includeUsage: boolean
}

export interface CompletionRequest extends SamplingRequest {
  readonly prompt: string
  /** Alternatives per position (completions style), or undefined for no log-probs. */
  readonly logprobs: number | undefined
}

export interface ChatRequest extends SamplingRequest {
  readonly messages: ReadonlyArray<ChatMessage>
  readonly logprobs: boolean
  readonly topLogprobs: number
}

/** The most alternatives per position a request may ask for, and the most choices. */
export const MAX_TOP_LOGPROBS = 20
export const MAX_CHOICES = 16
const MAX_STOPS = 4

const typeName = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "number" ? `the number ${v}` : typeof v

const invalid = (param: string, message: string) => apiError(400, `Invalid '${param}': ${message}`, param, "invalid_value")

const wrongType = (param: string, expected: string, v: unknown) =>
  apiError(400, `Invalid type for '${param}': expected ${expected}, but got ${typeName(v)}`, param, "invalid_type")

/** Reads one request body's fields; `null` counts as absent, as OpenAI's API takes it. */
const reader = (body: Record<string, unknown>) => {
  const present = (k: string) => body[k] !== undefined && body[k] !== null
  const number = (k: string, range: { min: number; max: number }, fallback: number, integer = false): number => {
    if (!present(k)) return fallback
    const v = body[k]
    if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw wrongType(k, integer ? "an integer" : "a number", v)
    if (v < range.min || v > range.max) throw invalid(k, `${v} is out of range; it must be between ${range.min} and ${range.max}`)
    return v
  }
  const optionalInt = (k: string, range: { min: number; max: number }): number | undefined =>
    present(k) ? number(k, range, 0, true) : undefined
  const boolean = (k: string): boolean => {
    if (!present(k)) return false
    if (typeof body[k] !== "boolean") throw wrongType(k, "a boolean", body[k])
    return body[k] as boolean
  }
  return { present, number, optionalInt, boolean }
}

const commonFields = [
  "model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "n", "stop", "stream", "stream_options",
  "user", "presence_penalty", "frequency_penalty"
]

const sampling = (body: Record<string, unknown>, known: ReadonlyArray<string>): SamplingRequest => {
  for (const k of Object.keys(body)) {
    if (!known.includes(k)) {
      throw apiError(400, `Unrecognized request argument supplied: ${k}; this server reads ${known.join(", ")}`, k, "unknown_parameter")
    }
  }
  const r = reader(body)
  if (typeof body.model !== "string") throw body.model === undefined ? apiError(400, "you must provide a model parameter", "model", "missing_required_parameter") : wrongType("model", "a string", body.model)
  for (const k of ["presence_penalty", "frequency_penalty"]) {
    if (r.number(k, { min: -2, max: 2 }, 0) !== 0) throw invalid(k, "this server does not apply penalties; leave it 0 or absent")
  }
  if (r.present("user") && typeof body.user !== "string") throw wrongType("user", "a string", body.user)
  let stop: ReadonlyArray<string> = []
  if (r.present("stop")) {
    const v = body.stop
    if (typeof v === "string") stop = [v]
    else if (Array.isArray(v) && v.every((s) => typeof s === "string")) stop = v as Array<string>
    else throw wrongType("stop", "a string or an array of strings", v)
    if (stop.length > MAX_STOPS) throw invalid("stop", `at most ${MAX_STOPS} stop strings; got ${stop.length}`)
  }
  const stream = r.boolean("stream")
  let includeUsage = false
  if (r.present("stream_options")) {
    const o = body.stream_options
    if (typeof o !== "object" || o === null || Array.isArray(o)) throw wrongType("stream_options", "an object", o)
    if (!stream) throw invalid("stream_options", "only allowed when 'stream' is true")
    const usage = (o as Record<string, unknown>).include_usage
    if (usage !== undefined && usage !== null && typeof usage !== "boolean") throw wrongType("stream_options.include_usage", "a boolean", usage)
    includeUsage = usage === true
  }
  return {
    model: body.model,
    maxTokens: r.optionalInt("max_tokens", { min: 1, max: Number.MAX_SAFE_INTEGER }),
    temperature: r.number("temperature", { min: 0, max: 2 }, 1),
    topP: r.number("top_p", { min: 0, max: 1 }, 1),
    topK: r.number("top_k", { min: 0, max: Number.MAX_SAFE_INTEGER }, 0, true),
    minP: r.number("min_p", { min: 0, max: 1 }, 0),
    seed: r.optionalInt("seed", { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    n: r.number("n", { min: 1, max: MAX_CHOICES }, 1, true),
    stop,
    stream,
    includeUsage
  }
}

const objectBody = (body: unknown): Record<string, unknown> => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw apiError(400, `the request body must be a JSON object; got ${typeName(body)}`, null, "invalid_body")
  }
  return body as Record<string, unknown>
}

/** A `POST /v1/completions` body. */
export const completionRequest = (raw: unknown): CompletionRequest => {
  const body = objectBody(raw)
  const base = sampling(body, [...commonFields, "prompt", "logprobs", "echo", "best_of", "suffix"])
  const r = reader(body)
  let prompt: string
  const p = body.prompt
  if (typeof p === "string") prompt = p
  else if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") prompt = p[0]
  else if (Array.isArray(p) && p.every((x) => typeof x === "string")) throw invalid("prompt", `one prompt per request; got ${p.length}`)
  else if (p === undefined || p === null) throw apiError(400, "you must provide a prompt parameter", "prompt", "missing_required_parameter")
  else throw wrongType("prompt", "a string or an array of one string", p)
  if (r.boolean("echo")) throw invalid("echo", "echoing the prompt is not supported; leave it false")
  if (r.number("best_of", { min: 1, max: 1 }, 1, true) !== 1) throw invalid("best_of", "only 1")
  if (r.present("suffix")) throw invalid("suffix", "inserting before a suffix is not supported")
  return { ...base, prompt, logprobs: r.optionalInt("logprobs", { min: 0, max: MAX_TOP_LOGPROBS }) }
}

/** A `POST /v1/chat/completions` body. */
export const chatRequest = (raw: unknown): ChatRequest => {
  const body = objectBody(raw)
  const base = sampling(body, [...commonFields, "messages", "logprobs", "top_logprobs", "max_completion_tokens"])
  const r = reader(body)
  if (!Array.isArray(body.messages)) {
    throw body.messages === undefined
      ? apiError(400, "you must provide a messages parameter", "messages", "missing_required_parameter")
      : wrongType("messages", "an array", body.messages)
  }
  if (body.messages.length === 0) throw invalid("messages", "at least one message")
  const messages = (body.messages as Array<unknown>).map((m, i) => {
    const message = chatMessageOf(m)
    if (typeof message === "string") throw invalid(`messages[${i}]`, message)
    return message
  })
  const logprobs = r.boolean("logprobs")
  const topLogprobs = r.number("top_logprobs", { min: 0, max: MAX_TOP_LOGPROBS }, 0, true)
  if (r.present("top_logprobs") && !logprobs) throw invalid("top_logprobs", "needs 'logprobs' to be true")
  const maxCompletion = r.optionalInt("max_completion_tokens", { min: 1, max: Number.MAX_SAFE_INTEGER })
  return { ...base, maxTokens: maxCompletion ?? base.maxTokens, messages, logprobs, topLogprobs }
}
