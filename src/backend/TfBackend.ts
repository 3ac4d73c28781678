/**
 * The tfjs backend as an Effect service, and the names that choose it. Readying a backend loads tfjs
 * (and wasm, Dawn or the native addon), so the service does it on first `use`, not when its layer is
 * built: a verb or a fully cached run that computes nothing never loads tfjs. Backend.ts does the
 * readying; this module imports it only then.
 */
import { Context, Effect, Layer, Schema } from "effect"

export const backendNames = ["wasm", "native", "cpu", "tensorflow", "webgpu", "auto"] as const
export type BackendName = (typeof backendNames)[number]

export const isBackendName = (s: string): s is BackendName => (backendNames as ReadonlyArray<string>).includes(s)

/** The backend a plain `run` uses: the fastest found (native where its addon built, else wasm). */
export const defaultBackend: BackendName = "auto"

/** A backend that was asked for and cannot run here, with what to do about it. */
export class BackendError extends Schema.TaggedError<BackendError>()("BackendError", {
  requested: Schema.String,
  message: Schema.String,
  choices: Schema.Array(Schema.String),
  cause: Schema.optional(Schema.Defect)
}) {}

const choices: ReadonlyArray<string> = backendNames

export const backendError = (requested: string, message: string, cause?: unknown): BackendError =>
  new BackendError({
    requested,
    message: `${message} Valid backends: ${choices.join(", ")}.`,
    choices,
    ...(cause === undefined ? {} : { cause })
  })

/** The tfjs backend of this process: the one asked for, readied once on first use. */
export class TfBackend extends Context.Tag("distillery/TfBackend")<
  TfBackend,
  {
    /** The backend asked for (`auto` included). */
    readonly requested: BackendName
    /** Readies the backend the first time (later calls return at once) and gives the name of the one in use. */
    readonly use: Effect.Effect<string, BackendError>
  }
>() {
  /** Readied on first `use`. */
  static layer(name: BackendName): Layer.Layer<TfBackend> {
    return Layer.effect(
      TfBackend,
      Effect.cached(
        Effect.tryPromise({
          try: async () => (await import("./Backend.js")).initBackend(name),
          catch: (e) => (e instanceof BackendError ? e : backendError(name, `Backend ${name} failed: ${String(e)}.`, e))
        })
      ).pipe(Effect.map((use) => TfBackend.of({ requested: name, use })))
    )
  }
}
