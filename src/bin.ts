#!/usr/bin/env node
/**
 * The composition root: the `distillery` CLI, the layers each verb needs, and the Node runtime.
 * What only computing verbs need (the executor, the worker pool, and through them the node kinds) is
 * imported when such a verb starts, so that `--help` and the reading verbs start at once.
 * Expected failures print their message (file:line, node, valid choices) and exit with a distinct code;
 * only bugs print a stack trace.
 */
import { Command, ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit, Layer } from "effect"
import type { BackendName } from "./backend/TfBackend.js"
import { TfBackend } from "./backend/TfBackend.js"
import { ArtifactStore } from "./cache/ArtifactStore.js"
import { explain } from "./cli/explain.js"
import { exportCommand } from "./cli/export.js"
import { exportModel } from "./cli/exportModel.js"
import { gc } from "./cli/gc.js"
import { graph } from "./cli/graph.js"
import { init } from "./cli/init.js"
import { ls } from "./cli/ls.js"
import { query } from "./cli/query.js"
import { report } from "./cli/report.js"
import { run } from "./cli/run.js"
import { schema } from "./cli/schema.js"
import { serve } from "./cli/serve.js"
import { keepFileHashesIn, resultsFile } from "./cli/shared.js"
import { show } from "./cli/show.js"
import { sweep } from "./cli/sweep.js"
import { validate } from "./cli/validate.js"
import { verify } from "./cli/verify.js"
import { ResultsStore } from "./store/ResultsStore.js"

const loadCompute = Effect.promise(() =>
  Promise.all([import("./dag/Executor.js"), import("./dag/WorkerPool.js"), import("./dag/Reporter.js"), import("./dag/SweepRunner.js")])
)

/**
 * Everything a verb that computes needs: backend, artifact store, results store, progress, executor,
 * and a pool of `workers` threads for heavy nodes (0: inline).
 */
const computeLayer = (store: string, backend: BackendName, workers: number) =>
  Layer.unwrapEffect(Effect.map(loadCompute, ([{ Executor }, { WorkerPool }, { Reporter }]) => Executor.layer.pipe(
    Layer.provideMerge(workers > 0 ? WorkerPool.layer(workers) : WorkerPool.layerInline),
    Layer.provideMerge(
      Layer.mergeAll(
        TfBackend.layer(backend),
        ArtifactStore.layerFileSystem(store),
        ResultsStore.layer(resultsFile(store)),
        Reporter.layerConsole,
        Layer.effectDiscard(Effect.sync(() => keepFileHashesIn(store)))
      )
    )
  )))

/**
 * `sweep`: the compute layers with the sweep's progress view (node progress feeds its status line)
 * and a pool of `workers` threads for heavy nodes (0: inline).
 */
const sweepLayer = (store: string, backend: BackendName, workers: number) =>
  Layer.unwrapEffect(Effect.map(loadCompute, ([{ Executor }, { WorkerPool }, { Reporter }, { SweepReporter }]) => Executor.layer.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        workers > 0 ? WorkerPool.layer(workers) : WorkerPool.layerInline,
        Layer.effect(Reporter, Effect.map(SweepReporter, (r) => r.node))
      )
    ),
    Layer.provideMerge(
      Layer.mergeAll(
        TfBackend.layer(backend),
        ArtifactStore.layerFileSystem(store),
        ResultsStore.layer(resultsFile(store)),
        SweepReporter.layerConsole,
        Layer.effectDiscard(Effect.sync(() => keepFileHashesIn(store)))
      )
    )
  )))

/** Query-only verbs open the results store read-only, so they work while a run is writing... when DuckDB allows. */
const readLayer = (store: string) => ResultsStore.layer(resultsFile(store), { readOnly: true })

const distillery = Command.make("distillery", {}).pipe(
  Command.withSubcommands([
    run.pipe(Command.provide((o) => computeLayer(o.store, o.backend, o.workers))),
    sweep.pipe(Command.provide((o) => sweepLayer(o.store, o.backend, o.workers))),
    validate,
    graph,
    query.pipe(Command.provide((o) => readLayer(o.store))),
    ls.pipe(Command.provide((o) => readLayer(o.store))),
    show.pipe(Command.provide((o) => readLayer(o.store))),
    explain.pipe(
      Command.provide((o) =>
        Layer.mergeAll(ArtifactStore.layerFileSystem(o.store), readLayer(o.store), Layer.effectDiscard(Effect.sync(() => keepFileHashesIn(o.store))))
      )
    ),
    exportCommand.pipe(Command.provide((o) => readLayer(o.store))),
    exportModel.pipe(Command.provide((o) => Layer.merge(ArtifactStore.layerFileSystem(o.store), readLayer(o.store)))),
    // The stores are opened by the verb itself, only while it looks the model up.
    serve.pipe(Command.provide((o) => TfBackend.layer(o.backend))),
    gc.pipe(Command.provide((o) => Layer.merge(ArtifactStore.layerFileSystem(o.store), readLayer(o.store)))),
    report.pipe(Command.provide((o) => readLayer(o.store))),
    // Read-only unless repairing: marking a run interrupted writes.
    verify.pipe(Command.provide((o) =>
      Layer.merge(ArtifactStore.layerFileSystem(o.store), ResultsStore.layer(resultsFile(o.store), { readOnly: !o.repair }))
    )),
    schema,
    init
  ])
)

const cli = Command.run(distillery, { name: "distillery", version: "0.1.0" })

/**
 * Exit codes: 1 failure, 2 bad input (pipeline, params, usage), 3 a node failed, 4 bad query, 5 `verify`
 * found problems (with `--repair`: problems it could not mend), 130 interrupted.
 */
const exitCodeOf = (tag: string): number => {
  switch (tag) {
    case "PipelineError":
    case "PluginError":
    case "RegistryError":
    case "UsageError":
    case "BackendError":
    case "ReportOptionError":
    case "UnknownNodeError":
    case "FolderNotEmptyError":
    case "NotALanguageModelError":
    case "IdTakenError":
      return 2
    case "RunFailedError":
    case "SweepFailedError":
      return 3
    case "QueryError":
    case "UnknownRunError":
      return 4
    case "VerifyFailedError":
      return 5
    default:
      return 1
  }
}

const main = cli(process.argv).pipe(
  Effect.catchAllCause((cause) => {
    if (Cause.isInterruptedOnly(cause)) {
      return Effect.sync(() => {
        process.exitCode = 130
      })
    }
    const failure = Cause.failureOption(cause)
    if (failure._tag === "Some") {
      // @effect/cli has already printed its own usage errors (a bad option value, a missing argument).
      if (ValidationError.isValidationError(failure.value)) return Effect.sync(() => (process.exitCode = exitCodeOf("UsageError")))
      const error = failure.value as { _tag?: string; message?: string }
      const tag = error._tag ?? "Error"
      const print = Console.error(`error: ${error.message ?? String(error)}`)
      return print.pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = exitCodeOf(tag)))))
    }
    return Console.error(Cause.pretty(cause)).pipe(Effect.zipRight(Effect.sync(() => (process.exitCode = 1))))
  }),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  // Ctrl-C interrupts the main fiber (the run records itself as interrupted); exit 130 as shells expect.
  teardown: (exit, onExit) =>
    onExit(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? 130 : Number(process.exitCode ?? 0))
})
