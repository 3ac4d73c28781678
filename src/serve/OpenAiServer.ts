/**
 * An OpenAI-compatible HTTP server (node:http, no framework) for one Distillery language model, so that
 * any OpenAI client, eval harness or chat UI can call it:
 * ```
 *   GET  /v1/models                 the one model
 *   GET  /v1/models/<id>
 *   POST /v1/completions            prompt -> text (logprobs: top-N per position, completions style)
 *   POST /v1/chat/completions       messages -> text, through ChatTemplate.ts (logprobs + top_logprobs)
 * ```
 * Both generation routes take max_tokens, temperature, top_p, top_k and min_p (extensions), seed, n,
 * stop, and `stream: true` for server-sent events (`data: {chunk}` lines, then `data: [DONE]`).
 * Requests generate `concurrency` at a time (a semaphore); the others wait their turn in order. A
 * request with a seed gives the same text every time; without one it draws a random seed.
 */
import { randomBytes, randomInt } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Cause, Effect, Exit } from "effect"
import type { LanguageModel } from "../domain/Artifact.js"
import { renderChat } from "./ChatTemplate.js"
import type { ChoiceEnd, Engine, GeneratedToken, Piece } from "./Engine.js"
import { choiceSeed, makeEngine } from "./Engine.js"
import type { SamplingRequest } from "./Requests.js"
import { ApiError, apiError, chatRequest, completionRequest, errorBody } from "./Requests.js"

export interface ServerOptions {
  readonly model: LanguageModel
  /** The model's id in requests and in `/v1/models`. */
  readonly name: string
  /** Default 127.0.0.1. */
  readonly host?: string
  /** Default 8080; 0 picks a free port. */
  readonly port?: number
  /** Requests generating at once; default 1. */
  readonly concurrency?: number
  /** `system_fingerprint` of every response, e.g. the model's cache key. */
  readonly fingerprint?: string
  /** Called once per answered request with a one-line summary. */
  readonly log?: (line: string) => void
}

export interface RunningServer {
  /** `http://host:port`; the OpenAI base URL is this plus `/v1`. */
  readonly url: string
  readonly port: number
  /** Stops listening, ends open connections, waits for generations to stop, frees the model. */
  readonly close: () => Promise<void>
}

/** One generation request, checked: what its choices continue, how far, and whether its client is gone. */
interface Job {
  readonly request: SamplingRequest
  readonly prompt: Int32Array
  readonly maxTokens: number
  /** Whether to report log-probs, and how many alternatives per position. */
  readonly logprobs: { readonly on: boolean; readonly top: number }
  readonly closed: () => boolean
}

const MAX_BODY_BYTES = 1024 * 1024

const routes: ReadonlyArray<{ readonly path: RegExp; readonly method: "GET" | "POST"; readonly name: string }> = [
  { path: /^\/v1\/models\/?$/, method: "GET", name: "GET /v1/models" },
  { path: /^\/v1\/models\/[^/]+$/, method: "GET", name: "GET /v1/models/<id>" },
  { path: /^\/v1\/completions\/?$/, method: "POST", name: "POST /v1/completions" },
  { path: /^\/v1\/chat\/completions\/?$/, method: "POST", name: "POST /v1/chat/completions" }
]

const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers })
  res.end(text)
}

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        reject(apiError(413, `the request body is over ${MAX_BODY_BYTES} bytes`, null, "request_too_large"))
        req.destroy()
      } else chunks.push(chunk)
    })
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

/** Completions-style log-probs of some tokens: parallel lists, alternatives as { token: logprob }. */
const completionLogprobs = (tokens: ReadonlyArray<GeneratedToken>) => ({
  tokens: tokens.map((t) => t.token),
  token_logprobs: tokens.map((t) => t.logprob),
  top_logprobs: tokens.map((t) => Object.fromEntries(t.top.map((a) => [a.token, a.logprob]))),
  text_offset: tokens.map((t) => t.textOffset)
})

/** Chat-style log-probs of some tokens: one entry per token with its alternatives. */
const chatLogprobs = (tokens: ReadonlyArray<GeneratedToken>) => ({
  content: tokens.map((t) => ({
    token: t.token,
    logprob: t.logprob,
    bytes: t.bytes,
    top_logprobs: t.top.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes }))
  })),
  refusal: null
})

/** A choice's whole text, its tokens and how it ended. */
interface WholeChoice {
  readonly text: string
  readonly tokens: ReadonlyArray<GeneratedToken>
  readonly end: ChoiceEnd
}

/** How one route writes its answers: choices whole, and stream chunks' choices. */
interface ResponseShape {
  readonly idPrefix: string
  readonly object: string
  readonly chunkObject: string
  readonly wholeChoice: (index: number, choice: WholeChoice, logprobs: boolean) => unknown
  /** The chunk that opens a streamed choice, if the route has one. */
  readonly openingChoice?: (index: number) => unknown
  readonly pieceChoice: (index: number, piece: Piece, logprobs: boolean) => unknown
  readonly endChoice: (index: number, end: ChoiceEnd) => unknown
}

const completionShape: ResponseShape = {
  idPrefix: "cmpl",
  object: "text_completion",
  chunkObject: "text_completion",
  wholeChoice: (index, c, logprobs) => ({ index, text: c.text, logprobs: logprobs ? completionLogprobs(c.tokens) : null, finish_reason: c.end.finishReason }),
  pieceChoice: (index, p, logprobs) => ({ index, text: p.text, logprobs: logprobs ? completionLogprobs(p.tokens) : null, finish_reason: null }),
  endChoice: (index, end) => ({ index, text: "", logprobs: null, finish_reason: end.finishReason })
}

const chatShape: ResponseShape = {
  idPrefix: "chatcmpl",
  object: "chat.completion",
  chunkObject: "chat.completion.chunk",
  wholeChoice: (index, c, logprobs) => ({
    index,
    message: { role: "assistant", content: c.text, refusal: null },
    logprobs: logprobs ? chatLogprobs(c.tokens) : null,
    finish_reason: c.end.finishReason
  }),
  openingChoice: (index) => ({ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }),
  pieceChoice: (index, p, logprobs) => ({ index, delta: { content: p.text }, logprobs: logprobs ? chatLogprobs(p.tokens) : null, finish_reason: null }),
  endChoice: (index, end) => ({ index, delta: {}, logprobs: null, finish_reason: end.finishReason })
}

export const startServer = async (options: ServerOptions): Promise<RunningServer> => {
  const engine: Engine = makeEngine(options.model)
  const name = options.name
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1))
  const semaphore = Effect.runSync(Effect.makeSemaphore(concurrency))
  const created = Math.floor(Date.now() / 1000)
  const fingerprint = options.fingerprint ?? null
  const inflight = new Set<Promise<unknown>>()

  /** Runs `job` when a permit is free (requests queue in arrival order). */
  const withPermit = async <A>(job: () => Promise<A>): Promise<A> => {
    const exit = await Effect.runPromiseExit(semaphore.withPermits(1)(Effect.tryPromise({ try: job, catch: (e) => e })))
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }

  const modelCard = { id: name, object: "model", created, owned_by: "distillery" }

  const checkModel = (model: string) => {
    if (model !== name) throw apiError(404, `The model '${model}' does not exist; this server serves '${name}'`, "model", "model_not_found")
  }

  /** The prompt's tokens, refused when they leave no room for one new token. */
  const promptTokens = (text: string, param: string): Int32Array => {
    const tokens = engine.encodePrompt(text)
    const context = engine.spec.context
    if (tokens.length >= context) {
      throw apiError(
        400,
        `This model's maximum context length is ${context} tokens; the ${param} has ${tokens.length} tokens, and at most ${context - 1} leave room for a new one`,
        param,
        "context_length_exceeded"
      )
    }
    return tokens
  }

  /**
   * Generates the request's n choices one after the other, handing each piece of text to `onPiece`
   * and each choice's end to `onEnd`; returns how many tokens were sampled in all.
   */
  const generateChoices = async (
    { closed, logprobs, maxTokens, prompt, request: r }: Job,
    onPiece: (index: number, piece: Piece) => void,
    onEnd: (index: number, end: ChoiceEnd) => void
  ): Promise<number> => {
    const seed = r.seed ?? randomInt(0x7fffffff)
    let completionTokens = 0
    for (let index = 0; index < r.n && !closed(); index++) {
      const end = await engine.generate(
        {
          prompt,
          maxTokens,
          sampler: { temperature: r.temperature, topK: r.topK, topP: r.topP, minP: r.minP },
          seed: choiceSeed(seed, index),
          stop: r.stop,
          logprobs: logprobs.on,
          topLogprobs: logprobs.top,
          cancelled: closed
        },
        (piece) => onPiece(index, piece)
      )
      completionTokens += end.completionTokens
      onEnd(index, end)
    }
    return completionTokens
  }

  /** The request's choices whole, for an answer that is not streamed. */
  const collectChoices = async (job: Job) => {
    const choices: Array<{ text: string; tokens: Array<GeneratedToken>; end: ChoiceEnd }> = []
    const choice = (i: number) => (choices[i] ??= { text: "", tokens: [], end: { finishReason: "length", completionTokens: 0 } })
    const used = await generateChoices(job, (i, p) => {
      const c = choice(i)
      c.text += p.text
      c.tokens.push(...p.tokens)
    }, (i, e) => (choice(i).end = e))
    return { choices, used }
  }

  const usageOf = (prompt: number, completion: number) => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion })

  /** Starts a server-sent event stream; `send` writes one `data:` event. */
  const eventStream = (res: ServerResponse) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
    return {
      send: (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`),
      done: () => res.end("data: [DONE]\n\n")
    }
  }

  /**
   * Generates a job's choices and answers with them in `shape`: streamed as server-sent events, or as
   * one JSON body. Waits for a permit first; returns a summary for the log.
   */
  const respond = (job: Job, shape: ResponseShape, res: ServerResponse): Promise<string> => {
    const { request: r, prompt, logprobs } = job
    const head = { id: `${shape.idPrefix}-${randomBytes(12).toString("hex")}`, created: Math.floor(Date.now() / 1000), model: name, system_fingerprint: fingerprint }
    return withPermit(async () => {
      if (job.closed()) return "client gone before its turn"
      if (r.stream) {
        const events = eventStream(res)
        const chunk = { ...head, object: shape.chunkObject }
        const started = new Set<number>()
        const opening = (index: number) => {
          if (started.has(index)) return
          started.add(index)
          if (shape.openingChoice !== undefined) events.send({ ...chunk, choices: [shape.openingChoice(index)] })
        }
        const used = await generateChoices(job, (index, piece) => {
          opening(index)
          events.send({ ...chunk, choices: [shape.pieceChoice(index, piece, logprobs.on)] })
        }, (index, end) => {
          opening(index)
          events.send({ ...chunk, choices: [shape.endChoice(index, end)] })
        })
        if (r.includeUsage) events.send({ ...chunk, choices: [], usage: usageOf(prompt.length, used) })
        events.done()
        return `${prompt.length}+${used} tokens, streamed`
      }
      const { choices, used } = await collectChoices(job)
      sendJson(res, 200, {
        ...head,
        object: shape.object,
        choices: choices.map((c, index) => shape.wholeChoice(index, c, logprobs.on)),
        usage: usageOf(prompt.length, used)
      })
      return `${prompt.length}+${used} tokens`
    })
  }

  const completions = (body: unknown, res: ServerResponse, closed: () => boolean): Promise<string> => {
    const r = completionRequest(body)
    checkModel(r.model)
    const prompt = promptTokens(r.prompt, "prompt")
    const logprobs = { on: r.logprobs !== undefined, top: r.logprobs ?? 0 }
    return respond({ request: r, prompt, maxTokens: r.maxTokens ?? 16, logprobs, closed }, completionShape, res)
  }

  const chat = (body: unknown, res: ServerResponse, closed: () => boolean): Promise<string> => {
    const r = chatRequest(body)
    checkModel(r.model)
    const prompt = promptTokens(renderChat(r.messages), "messages")
    const logprobs = { on: r.logprobs, top: r.topLogprobs }
    return respond({ request: r, prompt, maxTokens: r.maxTokens ?? engine.spec.context, logprobs, closed }, chatShape, res)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<string> => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname
    const matching = routes.filter((r) => r.path.test(path))
    if (matching.length === 0) {
      throw apiError(404, `Unknown route ${req.method} ${path}; this server answers ${routes.map((r) => r.name).join(", ")}`, null, "unknown_url")
    }
    const route = matching.find((r) => r.method === req.method)
    if (route === undefined) {
      const allowed = [...new Set(matching.map((r) => r.method))]
      res.setHeader("allow", allowed.join(", "))
      throw apiError(405, `Method ${req.method} is not allowed on ${path}; use ${allowed.join(" or ")}`, null, "method_not_allowed")
    }
    if (route.method === "GET") {
      if (route.name === "GET /v1/models") {
        sendJson(res, 200, { object: "list", data: [modelCard] })
        return "1 model"
      }
      const id = decodeURIComponent(path.slice("/v1/models/".length))
      checkModel(id)
      sendJson(res, 200, modelCard)
      return id
    }
    const text = await readBody(req)
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (e) {
      throw apiError(400, `We could not parse the JSON body of your request (${e instanceof Error ? e.message : String(e)}); send a JSON object`, null, "invalid_json")
    }
    let closed = false
    res.on("close", () => (closed = !res.writableFinished))
    const isClosed = () => closed
    return route.name === "POST /v1/completions" ? completions(body, res, isClosed) : chat(body, res, isClosed)
  }

  const server = createServer((req, res) => {
    const started = performance.now()
    const job = handle(req, res).then(
      (summary) => ({ status: res.statusCode, summary }),
      (e: unknown) => {
        const error = e instanceof ApiError ? e : apiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, null, "internal_error")
        if (!res.headersSent) sendJson(res, error.status, errorBody(error))
        else if (!res.writableEnded) res.end(`data: ${JSON.stringify(errorBody(error))}\n\n`)
        return { status: error.status, summary: error.message }
      }
    ).then(({ status, summary }) => {
      options.log?.(`${req.method} ${req.url} ${status} ${((performance.now() - started) / 1000).toFixed(2)} s: ${summary}`)
    })
    inflight.add(job)
    void job.finally(() => inflight.delete(job))
  })

  const host = options.host ?? "127.0.0.1"
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => {
      engine.dispose()
      reject(e)
    })
    server.listen(options.port ?? 8080, host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    close: () => {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeAllConnections()
        await stopped
        await Promise.allSettled([...inflight])
        engine.dispose()
      })()
      return closing
    }
  }
}
