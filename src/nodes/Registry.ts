/**
 * The registry of node kinds a pipeline may use: the built-in kinds plus those that plugins export.
 * Registration is explicit (a plugin module exports its kinds; `loadPlugin` adds them) and a name
 * registered twice is an error naming both origins.
 */
import { Effect, Either, Schema } from "effect"
import { isAbsolute, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type { AnyNodeKind } from "./NodeKind.js"

export interface KindRegistry {
  readonly kinds: ReadonlyMap<string, AnyNodeKind>
  /** Where each kind came from ("built-in" or the plugin's name), for error messages. */
  readonly origins: ReadonlyMap<string, string>
}

/** What a plugin module exports (as `default` or as `plugin`). */
export interface Plugin {
  readonly name: string
  readonly kinds: ReadonlyArray<AnyNodeKind>
}

export const definePlugin = (plugin: Plugin): Plugin => plugin

export class RegistryError extends Schema.TaggedError<RegistryError>()("RegistryError", {
  message: Schema.String
}) {}

export class PluginError extends Schema.TaggedError<PluginError>()("PluginError", {
  plugin: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export const emptyRegistry: KindRegistry = { kinds: new Map(), origins: new Map() }

/** Adds kinds under one origin; a kind name already present fails. */
export const register = (
  registry: KindRegistry,
  origin: string,
  kinds: ReadonlyArray<AnyNodeKind>
): Either.Either<KindRegistry, RegistryError> => {
  const next = new Map(registry.kinds)
  const origins = new Map(registry.origins)
  for (const kind of kinds) {
    const existing = origins.get(kind.kind)
    if (existing !== undefined) {
      return Either.left(
        new RegistryError({
          message: `node kind '${kind.kind}' from ${origin} is already registered by ${existing}; rename one of them`
        })
      )
    }
    next.set(kind.kind, kind)
    origins.set(kind.kind, origin)
  }
  return Either.right({ kinds: next, origins })
}

const isPlugin = (u: unknown): u is Plugin =>
  typeof u === "object" && u !== null && typeof (u as Plugin).name === "string" && Array.isArray((u as Plugin).kinds)

/**
 * Imports a plugin module: a path (relative to `baseDir`), or a package name. The module exports a
 * `Plugin` as its default export or as `plugin`.
 */
export const loadPlugin = (specifier: string, baseDir: string): Effect.Effect<Plugin, PluginError> => {
  const target =
    specifier.startsWith(".") || isAbsolute(specifier)
      ? pathToFileURL(resolve(baseDir, specifier)).href
      : specifier
  return Effect.tryPromise({
    try: () => import(target) as Promise<Record<string, unknown>>,
    catch: (cause) =>
      new PluginError({
        plugin: specifier,
        message: `cannot load plugin '${specifier}' (resolved to ${target}): ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  }).pipe(
    Effect.flatMap((mod) => {
      const candidate = isPlugin(mod.default) ? mod.default : mod.plugin
      return isPlugin(candidate)
        ? Effect.succeed(candidate)
        : Effect.fail(
            new PluginError({
              plugin: specifier,
              message: `plugin '${specifier}' exports no plugin: export default definePlugin({ name, kinds: [...] })`
            })
          )
    })
  )
}

/** The registry plus every plugin, in order; a duplicate kind fails. */
export const withPlugins = (
  registry: KindRegistry,
  specifiers: ReadonlyArray<string>,
  baseDir: string
): Effect.Effect<KindRegistry, PluginError | RegistryError> =>
  Effect.reduce(specifiers, registry, (acc, specifier) =>
    loadPlugin(specifier, baseDir).pipe(
      Effect.flatMap((plugin) => register(acc, `plugin '${plugin.name}' (${specifier})`, plugin.kinds))
    )
  )
