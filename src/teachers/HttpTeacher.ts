/**
 * The teacher interface over an OpenAI-compatible endpoint: `POST <baseUrl>/completions` (or
 * `/chat/completions`) with logprobs, seed, temperature, top_p, max_tokens and stop, one request per
 * prompt (each row has its own seed). Requests run `concurrency` at a time (a semaphore), spaced to the
 * requests- and tokens-per-minute limits, each under a timeout, retried on 429, 5xx, timeouts and lost
 * connections by an exponential, jittered Schedule that waits what a Retry-After header asks instead.
 * Every answered request is cached by the hash of its URL and body (ResponseCache.ts), so a re-run
 * sends only what was never answered. A prompt that still fails comes back as `Failed` with its error.
 * The API key goes only into the Authorization header and is cut out of any text the server sends back.
 * The endpoint's vocabulary is unknown: samples are text, and top-k alternatives are named by text.
 */
import { Clock, Duration, Effect, Ref, Schedule, Schema } from "effect"
import type { TeacherEndpoint } from "../domain/Artifact.js"
import * as ResponseCache from "./ResponseCache.js"
import type { PositionScores, SampleOutcome, SampleSettings, Teacher, TeacherPrompt, TeacherSample } from "./Teacher.js"
import { tailOf, TeacherError } from "./Teacher.js"

/** The most alternatives per position OpenAI's APIs return. */
export const MAX_TOP_LOGPROBS = 20

/** One request that did not get a usable answer; `retryable` says whether another attempt may. */
export class RequestError extends Schema.TaggedError<RequestError>()("RequestError", {
  url: Schema.String,
  status: Schema.optional(Schema.Number),
  message: Schema.String,
  retryable: Schema.Boolean,
  retryAfterMillis: Schema.optional(Schema.Number)
}) {}

/** What the teacher did, for metrics: requests sent (retries included), cache hits, tokens and cost. */
export interface HttpStats {
  requests: number
  cacheHits: number
  retries: number
  failures: number
  inputTokens: number
  outputTokens: number
  cost: number
}

export interface HttpTeacher extends Teacher {
  readonly stats: () => HttpStats
}

export interface HttpTeacherOptions {
  /** The key sent as `Authorization: Bearer <key>`; read by the caller from `endpoint.apiKeyEnv`. */
  readonly apiKey?: string
  /** Where answered requests are kept; default: `endpoint.responses`, else nowhere. */
  readonly cache?: ResponseCache.ResponseCache
  /** The first retry's delay before jitter; each next one doubles it. */
  readonly retryBase?: Duration.DurationInput
}

/** A lost connection in words, from undici's error codes. */
const connectionWords: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  UND_ERR_SOCKET: "the connection closed",
  UND_ERR_CONNECT_TIMEOUT: "could not connect in time",
  ENOTFOUND: "host not found"
}

/** Retry-After in milliseconds (seconds or an HTTP date), or undefined. */
const retryAfter = (header: string | null, now: number): number | undefined => {
  if (header === null) return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/**
 * Attempts after the first: exponential and jittered, or what the server's Retry-After asks, at most
 * `retries`, and only while the error is retryable.
 */
export const retrySchedule = (retries: number, base: Duration.DurationInput = "200 millis") =>
  Schedule.exponential(base, 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.identity<RequestError>()),
    Schedule.modifyDelay(([, error], delay) => (error.retryAfterMillis !== undefined ? Duration.millis(error.retryAfterMillis) : delay)),
    Schedule.intersect(Schedule.recurs(retries)),
    Schedule.whileInput((error: RequestError) => error.retryable)
  )

/**
 * A limit of `perMinute` units (requests or tokens) as the earliest time the next unit may go:
 * acquiring n units reserves n / perMinute of a minute and waits until its reservation starts.
 */
const spacing = (perMinute: number | undefined) => {
  const next = Ref.unsafeMake(0)
  return (units: number): Effect.Effect<void> =>
    perMinute === undefined
      ? Effect.void
      : Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          const wait = yield* Ref.modify(next, (t) => {
            const start = Math.max(t, now)
            return [start - now, start + (units * 60_000) / perMinute] as const
          })
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        })
}

const finishOf = (reason: unknown): TeacherSample["finishReason"] => (reason === "length" ? "length" : "stop")

/** Per-position alternatives (token text -> log-prob) as k-wide arrays, most likely first. */
const positionScores = (k: number, alternatives: ReadonlyArray<ReadonlyArray<readonly [string, number]>>, chosen: ReadonlyArray<number>): PositionScores => {
  const P = alternatives.length
  const logProbs = new Float32Array(P * k).fill(-Infinity)
  const texts: Array<Array<string>> = []
  const tailLogProb = new Float32Array(P)
  alternatives.forEach((alts, p) => {
    const top = [...alts].sort((a, b) => b[1] - a[1]).slice(0, k)
    texts.push(Array.from({ length: k }, (_, j) => top[j]?.[0] ?? ""))
    top.forEach(([, lp], j) => (logProbs[p * k + j] = lp))
    tailLogProb[p] = tailOf(top.map(([, lp]) => lp))
  })
  return { k, texts, logProbs, tailLogProb, tokenLogProb: Float32Array.from(chosen) }
}

/** A completions or chat answer as a sample; undefined when it has no choice to read. */
export const parseAnswer = (api: TeacherEndpoint["api"], answer: unknown, k: number): TeacherSample | undefined => {
  const a = answer as Record<string, any>
  const choice = a?.choices?.[0]
  if (choice === undefined || choice === null) return undefined
  const usage = typeof a.usage?.prompt_tokens === "number" ? { input: a.usage.prompt_tokens as number, output: (a.usage.completion_tokens ?? 0) as number } : undefined
  let text: string
  let chosen: Array<number> | undefined
  let alternatives: Array<Array<readonly [string, number]>> | undefined
  if (api === "completions") {
    if (typeof choice.text !== "string") return undefined
    text = choice.text
    const lp = choice.logprobs
    if (lp !== null && lp !== undefined && Array.isArray(lp.token_logprobs)) {
      chosen = lp.token_logprobs.map((x: unknown) => (typeof x === "number" ? x : NaN))
      if (Array.isArray(lp.top_logprobs)) alternatives = lp.top_logprobs.map((o: Record<string, number> | null) => Object.entries(o ?? {}))
    }
  } else {
    const content = choice.message?.content
    if (typeof content !== "string") return undefined
    text = content
    const entries = choice.logprobs?.content
    if (Array.isArray(entries)) {
      chosen = entries.map((e: any) => (typeof e?.logprob === "number" ? e.logprob : NaN))
      alternatives = entries.map((e: any) => (Array.isArray(e?.top_logprobs) ? e.top_logprobs.map((t: any) => [String(t.token), Number(t.logprob)] as const) : []))
    }
  }
  return {
    text,
    finishReason: finishOf(choice.finish_reason),
    ...(chosen !== undefined ? { tokenLogProbs: Float32Array.from(chosen) } : {}),
    ...(chosen !== undefined && alternatives !== undefined && k > 0 ? { top: positionScores(k, alternatives, chosen) } : {}),
    ...(usage !== undefined ? { usage } : {})
  }
}

export const make = (endpoint: TeacherEndpoint, options: HttpTeacherOptions = {}): Effect.Effect<HttpTeacher> =>
  Effect.gen(function* () {
    const base = endpoint.baseUrl.replace(/\/+$/, "")
    const url = `${base}${endpoint.api === "chat" ? "/chat/completions" : "/completions"}`
    const name = `${url} (model ${endpoint.model})`
    const key = options.apiKey
    const redact = (text: string) => (key !== undefined && key.length > 0 ? text.split(key).join("<key>") : text)
    const cache = options.cache ?? (endpoint.responses !== undefined ? ResponseCache.directory(endpoint.responses) : ResponseCache.none)
    const semaphore = yield* Effect.makeSemaphore(Math.max(1, endpoint.concurrency))
    const perRequest = spacing(endpoint.requestsPerMinute)
    const perToken = spacing(endpoint.tokensPerMinute)
    const schedule = retrySchedule(endpoint.retries, options.retryBase)
    const stats: HttpStats = { requests: 0, cacheHits: 0, retries: 0, failures: 0, inputTokens: 0, outputTokens: 0, cost: 0 }
    const headers: Record<string, string> = { "content-type": "application/json", ...(key !== undefined && key.length > 0 ? { authorization: `Bearer ${key}` } : {}) }

    const bodyOf = (prompt: TeacherPrompt, s: SampleSettings, k: number): Record<string, unknown> => ({
      model: endpoint.model,
      ...(endpoint.api === "chat" ? { messages: [{ role: "user", content: prompt.text }] } : { prompt: prompt.text }),
      max_tokens: s.maxNewTokens,
      temperature: s.temperature,
      top_p: s.topP,
      ...(s.topK > 0 ? { top_k: s.topK } : {}),
      ...(s.minP > 0 ? { min_p: s.minP } : {}),
      seed: prompt.seed,
      n: 1,
      ...(s.stop.length > 0 ? { stop: s.stop } : {}),
      ...(k > 0 ? (endpoint.api === "chat" ? { logprobs: true, top_logprobs: k } : { logprobs: k }) : {})
    })

    /** One attempt: the answer's JSON, or why there is none. */
    const attempt = (body: string) =>
      Effect.gen(function* () {
        stats.requests++
        const response = yield* Effect.tryPromise({
          try: (signal) => fetch(url, { method: "POST", headers, body, signal }),
          catch: (cause) => {
            const code = (cause as { cause?: { code?: string } })?.cause?.code
            return new RequestError({ url, message: `POST ${url}: no answer (${code !== undefined ? (connectionWords[code] ?? code) : redact(cause instanceof Error ? cause.message : String(cause))})`, retryable: true })
          }
        })
        const text = yield* Effect.tryPromise({
          try: () => response.text(),
          catch: () => new RequestError({ url, status: response.status, message: `POST ${url}: the answer broke off`, retryable: true })
        })
        if (!response.ok) {
          let detail = text.slice(0, 300)
          try {
            detail = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? detail
          } catch {
            // a body that is not JSON is quoted as it is
          }
          const now = yield* Clock.currentTimeMillis
          const wait = retryAfter(response.headers.get("retry-after"), now)
          return yield* new RequestError({
            url,
            status: response.status,
            message: `POST ${url}: ${response.status} ${response.statusText}${detail !== "" ? `: ${redact(detail)}` : ""}`,
            retryable: response.status === 429 || response.status >= 500,
            ...(wait !== undefined ? { retryAfterMillis: wait } : {})
          })
        }
        return yield* Effect.try({
          try: () => JSON.parse(text) as unknown,
          catch: () => new RequestError({ url, status: response.status, message: `POST ${url}: the answer is not JSON: ${redact(text.slice(0, 200))}`, retryable: false })
        })
      }).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(endpoint.timeoutSeconds),
          onTimeout: () => new RequestError({ url, message: `POST ${url}: no answer within ${endpoint.timeoutSeconds}s`, retryable: true })
        })
      )

    const one = (prompt: TeacherPrompt, settings: SampleSettings, k: number): Effect.Effect<SampleOutcome> =>
      Effect.gen(function* () {
        const body = bodyOf(prompt, settings, k)
        const cacheKey = ResponseCache.requestKey(url, body)
        const cached = yield* cache.get(cacheKey)
        let answer: unknown
        if (cached !== undefined) {
          stats.cacheHits++
          answer = cached
        } else {
          const json = JSON.stringify(body)
          const attempts = yield* Ref.make(0)
          answer = yield* semaphore.withPermits(1)(
            Effect.gen(function* () {
              yield* perRequest(1)
              yield* perToken(Math.ceil(prompt.text.length / 4) + settings.maxNewTokens)
              return yield* Ref.update(attempts, (n) => n + 1).pipe(Effect.zipRight(attempt(json)), Effect.retry(schedule))
            })
          ).pipe(Effect.ensuring(Ref.get(attempts).pipe(Effect.map((n) => void (stats.retries += Math.max(0, n - 1))))))
          const sample = parseAnswer(endpoint.api, answer, k)
          if (sample === undefined) return yield* new RequestError({ url, message: `POST ${url}: the answer has no choice with text`, retryable: false })
          if (sample.usage !== undefined) {
            stats.inputTokens += sample.usage.input
            stats.outputTokens += sample.usage.output
            stats.cost += (sample.usage.input * endpoint.price.input + sample.usage.output * endpoint.price.output) / 1e6
          }
          yield* cache.put(cacheKey, url, body, answer)
          return { _tag: "Sampled", sample } as const
        }
        const sample = parseAnswer(endpoint.api, answer, k)
        if (sample === undefined) return yield* new RequestError({ url, message: `POST ${url}: the cached answer has no choice with text`, retryable: false })
        return { _tag: "Sampled", sample } as const
      }).pipe(
        Effect.catchTag("RequestError", (e) =>
          Effect.sync((): SampleOutcome => {
            stats.failures++
            return { _tag: "Failed", error: redact(e.message) }
          })
        )
      )

    const sample = (prompts: ReadonlyArray<TeacherPrompt>, settings: SampleSettings) =>
      Effect.gen(function* () {
        const k = Math.min(settings.topLogprobs, endpoint.topLogprobs, MAX_TOP_LOGPROBS)
        let done = 0
        return yield* Effect.forEach(
          prompts,
          (p) =>
            one(p, settings, k).pipe(
              Effect.tap(() => Effect.sync(() => settings.onProgress?.(++done, prompts.length)))
            ),
          { concurrency: "unbounded" }
        )
      })

    return {
      name,
      vocabulary: undefined,
      sample,
      score: () =>
        Effect.fail(
          new TeacherError({
            teacher: name,
            message: `${name} cannot score given tokens: an OpenAI-compatible endpoint samples text in its own vocabulary; score with a Distillery model (lm_score) instead`
          })
        ),
      stats: () => ({ ...stats })
    } satisfies HttpTeacher
  })
