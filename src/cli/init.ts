/**
 * `distillery init <dir>`: scaffolds an experiment folder that runs as written, in seconds: a pipeline
 * YAML (two moons, an MLP teacher, a distilled and a scratch student, their evaluations) whose first
 * line points the YAML language server at the grammar's JSON Schema, the same pipeline built in
 * TypeScript with the SDK (same cache keys), and a README. It writes only into a new or empty folder.
 */
import { Args, Command } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Console, Effect, Schema } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"

/** The folder already holds files: init would mix its files with them. */
export class FolderNotEmptyError extends Schema.TaggedError<FolderNotEmptyError>()("FolderNotEmptyError", {
  dir: Schema.String,
  entries: Schema.Array(Schema.String)
}) {
  override get message(): string {
    const shown = this.entries.slice(0, 5).join(", ")
    return `${this.dir} is not empty (it holds ${shown}${this.entries.length > 5 ? ", ..." : ""}): init writes only into a new or empty folder; name another one`
  }
}

/** A scaffold file could not be written. */
export class InitWriteError extends Schema.TaggedError<InitWriteError>()("InitWriteError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** Where the installed Distillery lives: its schema file and its SDK (sources in a clone, else dist/). */
export interface Installation {
  readonly schemaFile: string
  readonly sdkModule: string
}

/** The package directory above this module (src/cli/ in a clone, dist/ when bundled). */
const packageRoot = (): string => {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = join(dir, "package.json")
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "distillery") return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no distillery package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
}

export const installation = (): Installation => {
  const root = packageRoot()
  return {
    schemaFile: join(root, "pipeline.schema.json"),
    sdkModule: existsSync(join(root, "src", "index.ts")) ? join(root, "src", "index.js") : join(root, "dist", "index.js")
  }
}

/** `target` as the scaffold refers to it from `dir`: relative inside the same tree, else absolute. */
export const referenceFrom = (dir: string, target: string, root: string): string => {
  const inside = relative(root, resolve(dir))
  if (inside.startsWith("..") || isAbsolute(inside)) return target
  const path = relative(resolve(dir), target).split(sep).join("/")
  return path.startsWith(".") ? path : `./${path}`
}

/** A pipeline name from a folder name: letters, digits, '-' and '_'. */
const nameOf = (dir: string): string => basename(resolve(dir)).replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "experiment"

const yamlOf = (name: string, schemaRef: string): string => `# yaml-language-server: $schema=${schemaRef}
# ${name}: a teacher MLP on two moons, a small student distilled from its soft labels at T = 4, and the
# same student trained on the hard labels alone, each evaluated on the test split. Runs in seconds:
#   npx distillery run pipeline.yaml
name: ${name}
description: Teacher MLP, distilled and scratch students on two moons
seed: 1
nodes:
  - id: moons
    kind: dataset
    params: { source: two_moons, examples: 400, noise: 0.2 }
  - id: teacher
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [32, 32] }, epochs: 20, batchSize: 32, optimizer: { type: adam, learningRate: 0.01 } }
  - id: soft
    kind: generate
    inputs: { model: teacher, data: moons }
  - id: student
    kind: train
    inputs: { data: moons, teacher: soft }
    params:
      model: { type: mlp, hidden: [8] }
      epochs: 20
      batchSize: 32
      optimizer: { type: adam, learningRate: 0.01 }
      objective: { divergence: forward_kl, temperature: 4, alpha: 0.7 }
  - id: scratch
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [8] }, epochs: 20, batchSize: 32, optimizer: { type: adam, learningRate: 0.01 } }
  - id: eval_teacher
    kind: evaluate
    inputs: { model: teacher, data: moons }
  - id: eval_student
    kind: evaluate
    inputs: { model: student, data: moons, teacher: teacher }
  - id: eval_scratch
    kind: evaluate
    inputs: { model: scratch, data: moons, teacher: teacher }
`

const pipelineTsOf = (name: string, sdk: string): string => `/**
 * pipeline.yaml as TypeScript: the same nodes, params and seed, so the same cache keys (running either
 * reuses the other's results). The builder's types check the wiring: a Model cannot feed a Dataset input.
 */
import type { PipelineBuilder } from "${sdk}"
import { DatasetKind, EvaluateKind, GenerateKind, pipeline, TrainKind } from "${sdk}"

export const experiment = (): PipelineBuilder => {
  const p = pipeline({ name: "${name}", description: "Teacher MLP, distilled and scratch students on two moons", seed: 1 })
  const moons = p.add("moons", DatasetKind, { params: { source: "two_moons", examples: 400, noise: 0.2 } })
  const training = { epochs: 20, batchSize: 32, optimizer: { type: "adam", learningRate: 0.01 } } as const
  const student = { type: "mlp", hidden: [8] } as const
  const teacher = p.add("teacher", TrainKind, {
    inputs: { data: moons.dataset },
    params: { model: { type: "mlp", hidden: [32, 32] }, ...training }
  })
  const soft = p.add("soft", GenerateKind, { inputs: { model: teacher.model, data: moons.dataset } })
  const distilled = p.add("student", TrainKind, {
    inputs: { data: moons.dataset, teacher: soft.soft },
    params: { model: student, ...training, objective: { divergence: "forward_kl", temperature: 4, alpha: 0.7 } }
  })
  const scratch = p.add("scratch", TrainKind, { inputs: { data: moons.dataset }, params: { model: student, ...training } })
  p.add("eval_teacher", EvaluateKind, { inputs: { model: teacher.model, data: moons.dataset } })
  p.add("eval_student", EvaluateKind, { inputs: { model: distilled.model, data: moons.dataset, teacher: teacher.model } })
  p.add("eval_scratch", EvaluateKind, { inputs: { model: scratch.model, data: moons.dataset, teacher: teacher.model } })
  return p
}
`

const readmeOf = (name: string): string => `# ${name}

A Distillery experiment: a teacher MLP on two moons, a small student distilled from its soft labels,
and the same student trained on the hard labels alone, each evaluated on the test split.

| file | what it is |
|---|---|
| \`pipeline.yaml\` | the pipeline; its first line points the YAML language server at the grammar, so an editor completes kinds, params and inputs and flags mistakes |
| \`pipeline.ts\` | the same pipeline built in TypeScript with the SDK: same nodes, same cache keys |

\`\`\`sh
npx distillery validate pipeline.yaml   # every check, and the nodes' cache keys
npx distillery run pipeline.yaml        # runs it (seconds); again, and every node is a cache hit
npx distillery show last                # the run's nodes and final metrics
\`\`\`

To run \`pipeline.ts\` from code, give \`experiment().build(builtinRegistry)\` to an \`Executor\`, as Distillery's
\`examples/01_mnist_kd_as_code/run.ts\` does.
`

/** The files `init` writes into `dir`, as (name, text). */
export const scaffoldFiles = (dir: string, install: Installation, root: string): ReadonlyArray<readonly [string, string]> => {
  const name = nameOf(dir)
  return [
    ["pipeline.yaml", yamlOf(name, referenceFrom(dir, install.schemaFile, root))],
    ["pipeline.ts", pipelineTsOf(name, referenceFrom(dir, install.sdkModule, root))],
    ["README.md", readmeOf(name)]
  ]
}

/** Writes the scaffold into `dir` (created when missing); a folder that holds anything is refused. */
export const scaffold = (dir: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const failWrite = (path: string) => (cause: { readonly message: string }) =>
      new InitWriteError({ path, message: `could not write ${path}: ${cause.message}`, cause })
    if (yield* fs.exists(dir).pipe(Effect.mapError(failWrite(dir)))) {
      const entries = yield* fs.readDirectory(dir).pipe(Effect.mapError(failWrite(dir)))
      if (entries.length > 0) return yield* new FolderNotEmptyError({ dir, entries: [...entries].sort() })
    }
    yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(failWrite(dir)))
    const install = installation()
    const files = scaffoldFiles(dir, install, dirname(install.schemaFile))
    for (const [name, text] of files) {
      const path = join(dir, name)
      yield* fs.writeFileString(path, text).pipe(Effect.mapError(failWrite(path)))
    }
    return files.map(([name]) => join(dir, name))
  })

export const init = Command.make(
  "init",
  { dir: Args.text({ name: "dir" }).pipe(Args.withDescription("the experiment folder to create (new or empty)")) },
  (o) =>
    Effect.gen(function* () {
      const written = yield* scaffold(o.dir)
      for (const path of written) yield* Console.log(`wrote ${path}`)
      yield* Console.log(`next: npx distillery run ${join(o.dir, "pipeline.yaml")}`)
    })
).pipe(Command.withDescription("Scaffold an experiment folder: a pipeline that runs in seconds, as YAML and TypeScript, and a README"))
