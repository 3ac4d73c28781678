/**
 * `distillery serve <run> <node> [--port 8080] [--host 127.0.0.1] [--concurrency 1]`: serves a run's
 * language model over an OpenAI-compatible HTTP API (serve/OpenAiServer.ts) until SIGINT or SIGTERM.
 * The stores are read once, to find the model, and closed before serving, so runs can write meanwhile.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Schema } from "effect"
import { TfBackend } from "../backend/TfBackend.js"
import { ArtifactStore } from "../cache/ArtifactStore.js"
import { ResultsStore } from "../store/ResultsStore.js"
import { loadLanguageModel } from "./exportModel.js"
import { backendOption, resultsFile, storeOption } from "./shared.js"

/** The server could not start (the port is taken, the host is not this machine's). */
export class ServeError extends Schema.TaggedError<ServeError>()("ServeError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export const serve = Command.make(
  "serve",
  {
    run: Args.text({ name: "run" }).pipe(Args.withDescription("a run id (or a unique prefix); `last` for the newest")),
    node: Args.text({ name: "node" }).pipe(Args.withDescription("the node whose language model to serve (an lm_train node)")),
    port: Options.integer("port").pipe(
      Options.withSchema(Schema.Int.pipe(Schema.between(0, 65535, { message: () => "--port takes 0 (any free port) to 65535" }))),
      Options.withDescription("the port to listen on (0: any free port)"),
      Options.withDefault(8080)
    ),
    host: Options.text("host").pipe(Options.withDescription("the address to listen on (0.0.0.0: every interface)"), Options.withDefault("127.0.0.1")),
    concurrency: Options.integer("concurrency").pipe(
      Options.withSchema(Schema.Int.pipe(Schema.positive({ message: () => "--concurrency takes a whole number of at least 1" }))),
      Options.withDescription("requests that generate at once (at least 1); the others queue"),
      Options.withDefault(1)
    ),
    store: storeOption,
    backend: backendOption
  },
  (o) =>
    Effect.gen(function*() {
      const found = yield* loadLanguageModel(o.run, o.node).pipe(
        Effect.provide(Layer.merge(ArtifactStore.layerFileSystem(o.store), ResultsStore.layer(resultsFile(o.store), { readOnly: true })))
      )
      const backend = yield* (yield* TfBackend).use
      const { startServer } = yield* Effect.promise(() => import("../serve/OpenAiServer.js"))
      const where = `${o.host}:${o.port}`
      const server = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            startServer({
              model: found.model,
              name: found.nodeId,
              host: o.host,
              port: o.port,
              concurrency: o.concurrency,
              fingerprint: `distillery-${found.cacheKey.slice(0, 12)}`,
              log: (line) => console.log(line)
            }),
          catch: (cause) =>
            new ServeError({
              message: `could not listen on ${where}: ${cause instanceof Error ? cause.message : String(cause)}` +
                ((cause as { code?: string }).code === "EADDRINUSE" ? "; pick another --port (0: any free one)" : ""),
              cause
            })
        }),
        (s) => Effect.promise(() => s.close())
      )
      yield* Console.log(
        `serving node '${found.nodeId}' of run ${found.runId} (${found.pipeline}) on backend ${backend}\n` +
          `listening on ${server.url} (OpenAI base URL ${server.url}/v1, model '${found.nodeId}'); Ctrl-C stops`
      )
      return yield* Effect.never
    }).pipe(Effect.scoped)
).pipe(Command.withDescription("Serve a run's language model over an OpenAI-compatible HTTP API (completions, chat, streaming)"))
