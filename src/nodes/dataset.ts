/**
 * The `dataset` node kind: loads or generates a dataset and splits it, train / validation / test,
 * stratified by label with the node's seed. `source` picks the data: the 10,000 MNIST digits of the
 * `mnist` package, a synthetic set (`gaussian_mixture`, `two_moons`, `spirals`) or a file (`jsonl`,
 * `csv`) with a declared schema. File paths that are not absolute resolve against `baseDir` when given,
 * else against the current working directory of the process.
 */
import { Effect, Schema } from "effect"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import type { Dataset } from "../domain/Artifact.js"
import type { DataError } from "../data/DataError.js"
import { loadFileDataset, resolveDataPath } from "../data/files.js"
import { loadMnist } from "../data/mnist.js"
import { gaussianMixture, spirals, twoMoons } from "../data/synthetic.js"
import { defineKind, NodeError } from "./NodeKind.js"

const Fraction = Schema.Number.pipe(Schema.between(0, 1))
const Count = Schema.Int.pipe(Schema.positive())
const NonNegative = Schema.Number.pipe(Schema.nonNegative())
const Positive = Schema.Number.pipe(Schema.positive())

/** Fractions held out of every class (rounded up per class); the rest trains. */
const splitFields = {
  validation: Schema.optionalWith(Fraction, { default: () => 0.1 }).annotations({
    description: "Fraction of every class held out for validation (early stopping, checkpoints)"
  }),
  test: Schema.optionalWith(Fraction, { default: () => 0.2 }).annotations({
    description: "Fraction of every class held out for the test split"
  })
}

export const MnistSource = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("mnist")).annotations({
    description: "The 10,000 28x28 digits of the mnist package"
  }),
  limit: Schema.optional(Count).annotations({
    description: "Keep only this many examples in all (a seeded subsample keeping class proportions), for tiny runs"
  }),
  ...splitFields
}).annotations({ identifier: "MnistSource" })

export const GaussianMixtureSource = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("gaussian_mixture")).annotations({
    description: "One Gaussian blob per class"
  }),
  classes: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)), { default: () => 3 }).annotations({
    description: "Number of classes"
  }),
  dims: Schema.optionalWith(Count, { default: () => 2 }).annotations({ description: "Number of features" }),
  examples: Schema.optionalWith(Count, { default: () => 600 }).annotations({
    description: "Number of examples in all, before the split"
  }),
  spread: Schema.optionalWith(Positive, { default: () => 1 }).annotations({
    description: "Standard deviation of each class around its mean"
  }),
  separation: Schema.optionalWith(NonNegative, { default: () => 4 }).annotations({
    description: "Distance between neighbouring class means"
  }),
  ...splitFields
}).annotations({ identifier: "GaussianMixtureSource" })

export const TwoMoonsSource = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("two_moons")).annotations({
    description: "Two interleaving half circles: two classes, two features"
  }),
  examples: Schema.optionalWith(Count, { default: () => 600 }).annotations({
    description: "Number of examples in all, before the split"
  }),
  noise: Schema.optionalWith(NonNegative, { default: () => 0.1 }).annotations({
    description: "Standard deviation of the noise added to each coordinate"
  }),
  ...splitFields
}).annotations({ identifier: "TwoMoonsSource" })

export const SpiralsSource = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("spirals")).annotations({
    description: "Interleaved spiral arms, one class each, two features"
  }),
  classes: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)), { default: () => 3 }).annotations({
    description: "Number of classes"
  }),
  examples: Schema.optionalWith(Count, { default: () => 600 }).annotations({
    description: "Number of examples in all, before the split"
  }),
  noise: Schema.optionalWith(NonNegative, { default: () => 0.05 }).annotations({
    description: "Standard deviation of the noise added to each coordinate"
  }),
  turns: Schema.optionalWith(Positive, { default: () => 1 }).annotations({
    description: "Full turns each arm makes from the centre to radius 1"
  }),
  ...splitFields
}).annotations({ identifier: "SpiralsSource" })

const fileFields = {
  path: Schema.propertySignature(Schema.NonEmptyString).annotations({
    description: "The data file: absolute, or relative to baseDir"
  }),
  features: Schema.propertySignature(Schema.Union(Schema.NonEmptyString, Schema.NonEmptyArray(Schema.NonEmptyString))).annotations({
    description: "Numeric columns (keys) in order, or the name of one column holding an array of numbers"
  }),
  label: Schema.optionalWith(Schema.NonEmptyString, { default: () => "label" }).annotations({
    description: "The column holding the label"
  }),
  classes: Schema.optional(
    Schema.NonEmptyArray(Schema.String).pipe(
      Schema.filter((names) => new Set(names).size === names.length || "class names must be distinct")
    )
  ).annotations({
    description: "Label names in class order; when absent, integer labels are used as is, else the sorted distinct labels"
  }),
  allowUnlabelled: Schema.optionalWith(Schema.Boolean, { default: () => false }).annotations({
    description: "Keep rows without a label as unlabelled (-1) instead of failing"
  }),
  baseDir: Schema.optional(Schema.String).annotations({
    description: "Directory that a relative `path` resolves against; the process's working directory when absent"
  }),
  ...splitFields
}

export const JsonlSource = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("jsonl")).annotations({ description: "A JSON Lines file, one example per line" }),
  ...fileFields
}).annotations({
  identifier: "JsonlSource"
})
export const CsvSource = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("csv")).annotations({ description: "A CSV file with a header row, one example per row" }),
  ...fileFields
}).annotations({
  identifier: "CsvSource"
})

/** The `dataset` node's params: one member per `source`, each with its defaults filled on decode. */
export const DatasetParams = Schema.Union(
  MnistSource,
  GaussianMixtureSource,
  TwoMoonsSource,
  SpiralsSource,
  JsonlSource,
  CsvSource
).pipe(
  Schema.filter(
    (p) =>
      p.validation + p.test < 1 ||
      `validation + test must be below 1 so that some examples train; got ${p.validation} + ${p.test}`
  ),
  Schema.annotations({ identifier: "DatasetParams" })
)
export type DatasetParams = typeof DatasetParams.Type

/** sha256 of a data file's bytes, or "missing" (the node then fails with the loader's message). */
export const fileFingerprint = (path: string, baseDir?: string): string => {
  try {
    return createHash("sha256").update(readFileSync(resolveDataPath(path, baseDir))).digest("hex")
  } catch {
    return "missing"
  }
}

/** The dataset the params describe, with everything random drawn from `seed`. */
export const loadDataset = (params: DatasetParams, seed: number): Effect.Effect<Dataset, DataError> => {
  switch (params.source) {
    case "mnist":
      return loadMnist({ ...params, seed })
    case "gaussian_mixture":
      return Effect.sync(() => gaussianMixture({ ...params, seed }))
    case "two_moons":
      return Effect.sync(() => twoMoons({ ...params, seed }))
    case "spirals":
      return Effect.sync(() => spirals({ ...params, seed }))
    case "jsonl":
    case "csv":
      return loadFileDataset({ ...params, format: params.source, seed })
  }
}

export const DatasetKind = defineKind({
  kind: "dataset",
  version: 1,
  description:
    "Loads MNIST, a synthetic set or a JSONL/CSV file and splits it train/validation/test, stratified and seeded",
  params: DatasetParams,
  inputs: {},
  outputs: { dataset: "Dataset" },
  // A file's content is part of the key: editing the file re-runs the node and what depends on it.
  fingerprint: (params) => (params.source === "jsonl" || params.source === "csv" ? fileFingerprint(params.path, params.baseDir) : undefined),
  run: (ctx) =>
    loadDataset(ctx.params, ctx.seed).pipe(
      Effect.tap((dataset) =>
        Effect.sync(() =>
          ctx.info({
            source: ctx.params.source,
            name: dataset.name,
            numClasses: dataset.numClasses,
            featureShape: dataset.featureShape,
            train: dataset.splits.train.y.length,
            validation: dataset.splits.validation.y.length,
            test: dataset.splits.test.y.length
          })
        )
      ),
      Effect.map((dataset) => ({ dataset })),
      Effect.mapError(
        (error) => new NodeError({ node: ctx.nodeId, kind: ctx.kind, message: error.message, cause: error })
      ),
      Effect.withSpan("dataset.run", { attributes: { node: ctx.nodeId, source: ctx.params.source } })
    )
})

/** The same kind under its earlier name. */
export const datasetKind = DatasetKind
