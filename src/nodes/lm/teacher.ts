/**
 * `http_teacher`: an OpenAI-compatible endpoint as a teacher. Its output is a `Teacher` port holding the
 * endpoint's description (URL, model, API, limits, prices; the name of the environment variable with
 * the key, never the key), which `lm_generate` samples through teachers/HttpTeacher.ts. Answered
 * requests are cached under the artifact store's `responses/` folder.
 */
import { join } from "node:path"
import { Effect, Option, Schema } from "effect"
import { ArtifactStore } from "../../cache/ArtifactStore.js"
import type { TeacherEndpoint } from "../../domain/Artifact.js"
import { MAX_TOP_LOGPROBS } from "../../teachers/HttpTeacher.js"
import { defineKind } from "../NodeKind.js"
import { fail, PositiveInt } from "./common.js"

const positive = Schema.Number.pipe(Schema.positive())

export const HttpTeacherParams = Schema.Struct({
  baseUrl: Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/, { message: () => "an http:// or https:// URL, e.g. http://127.0.0.1:8080/v1" })).annotations({
    description: "The API's base URL, up to and including /v1 (requests go to <baseUrl>/completions or <baseUrl>/chat/completions)"
  }),
  model: Schema.NonEmptyString.annotations({ description: "The model's id in requests" }),
  apiKeyEnv: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "an environment variable's name, e.g. OPENAI_API_KEY" }))).annotations({
    description: "The NAME of the environment variable holding the API key (sent as a bearer token; never stored); absent: no key"
  }),
  api: Schema.optionalWith(Schema.Literal("completions", "chat"), { default: () => "completions" as const }).annotations({
    description: "completions: the prompt as text, top-N log-probs per position; chat: the prompt as one user message"
  }),
  concurrency: Schema.optionalWith(PositiveInt, { default: () => 4 }).annotations({ description: "Requests in flight at once" }),
  requestsPerMinute: Schema.optional(positive).annotations({ description: "Requests started per minute at most; absent: no limit" }),
  tokensPerMinute: Schema.optional(positive).annotations({ description: "Tokens per minute at most (prompt estimate + max tokens per request); absent: no limit" }),
  timeoutSeconds: Schema.optionalWith(positive, { default: () => 60 }).annotations({ description: "One attempt's time limit" }),
  retries: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 4 }).annotations({
    description: "Attempts after the first on 429, 5xx, timeouts and lost connections (exponential backoff with jitter; Retry-After honoured)"
  }),
  topLogprobs: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, MAX_TOP_LOGPROBS)), { default: () => 5 }).annotations({
    description: `Alternatives per generated position asked for (0..${MAX_TOP_LOGPROBS}; up to what the server allows)`
  }),
  maxFailureFraction: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0 }).annotations({
    description: "The fraction of prompts that may still fail after their retries (recorded with their errors) before the node sampling fails"
  }),
  pricePerMillionTokens: Schema.optionalWith(Schema.Struct({ input: Schema.NonNegative, output: Schema.NonNegative }), { default: () => ({ input: 0, output: 0 }) }).annotations({
    description: "Dollars per million tokens { input, output }, for the cost metric"
  })
}).annotations({ identifier: "HttpTeacherParams" })
export type HttpTeacherParams = typeof HttpTeacherParams.Type

export const HttpTeacherKind = defineKind({
  kind: "http_teacher",
  version: 1,
  description: "An OpenAI-compatible endpoint (completions or chat) as a teacher for lm_generate: rate limits, retries, a response cache; the API key from an environment variable",
  params: HttpTeacherParams,
  inputs: {},
  outputs: { teacher: "Teacher" },
  run: (ctx) =>
    Effect.gen(function* () {
      const p = ctx.params
      if (p.apiKeyEnv !== undefined && (process.env[p.apiKeyEnv] ?? "") === "") {
        return yield* fail(ctx, `param 'apiKeyEnv': the environment variable ${p.apiKeyEnv} is not set; export it with the API key, or leave 'apiKeyEnv' out for an endpoint without one`)
      }
      // The store's folder, where answered requests are kept; nodes see the store only through this tag.
      const store = yield* Effect.serviceOption(ArtifactStore)
      const root = Option.isSome(store) ? store.value.root : undefined
      const teacher: TeacherEndpoint = {
        _tag: "TeacherEndpoint",
        baseUrl: p.baseUrl,
        model: p.model,
        api: p.api,
        ...(p.apiKeyEnv !== undefined ? { apiKeyEnv: p.apiKeyEnv } : {}),
        concurrency: p.concurrency,
        ...(p.requestsPerMinute !== undefined ? { requestsPerMinute: p.requestsPerMinute } : {}),
        ...(p.tokensPerMinute !== undefined ? { tokensPerMinute: p.tokensPerMinute } : {}),
        timeoutSeconds: p.timeoutSeconds,
        retries: p.retries,
        topLogprobs: p.topLogprobs,
        maxFailureFraction: p.maxFailureFraction,
        price: p.pricePerMillionTokens,
        ...(root !== undefined ? { responses: join(root, "responses") } : {})
      }
      ctx.info({ url: p.baseUrl, model: p.model, api: p.api, responses: teacher.responses ?? "not cached (in-memory store)" })
      return { teacher }
    })
})
