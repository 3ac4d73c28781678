/**
 * The built-in node kinds, registered explicitly (no import side effects): dataset, train, generate,
 * filter, evaluate.
 */
import { Either } from "effect"
import { datasetKind as DatasetKind } from "./dataset.js"
import { EvaluateKind } from "./evaluate.js"
import { FilterKind } from "./filter.js"
import { GenerateKind } from "./generate.js"
import type { AnyNodeKind } from "./NodeKind.js"
import type { KindRegistry } from "./Registry.js"
import { emptyRegistry, register } from "./Registry.js"
import { TrainKind } from "./train.js"

export const builtinKinds: ReadonlyArray<AnyNodeKind> = [DatasetKind, TrainKind, GenerateKind, FilterKind, EvaluateKind]

export const builtinRegistry: KindRegistry = Either.getOrThrow(register(emptyRegistry, "built-in", builtinKinds))
