/**
 * The built-in node kinds, registered explicitly (no import side effects): dataset, train, generate,
 * filter, evaluate; features (a teacher layer for FitNets / RKD), ensemble and evaluate_soft
 * (multi-teacher), mutual (deep mutual learning); text and tokenizer (language-model data);
 * lm_train, lm_generate, lm_score, lm_filter, lm_parse, lm_tasks, lm_evaluate and lm_task_evaluate
 * (language models, nodes/lm/); http_teacher and gguf_teacher (an OpenAI-compatible endpoint, a GGUF
 * file as a teacher). `born_again` is a macro, expanded into these kinds before validation
 * (pipeline/Macros.ts), not a kind.
 */
import { Either } from "effect"
import { datasetKind as DatasetKind } from "./dataset.js"
import { EnsembleKind, EvaluateSoftKind } from "./ensemble.js"
import { EvaluateKind } from "./evaluate.js"
import { FeaturesKind } from "./features.js"
import { FilterKind } from "./filter.js"
import { LmTrainKind } from "./lm/train.js"
import { LmEvaluateKind } from "./lm/evaluate.js"
import { LmGenerateKind, LmScoreKind } from "./lm/generate.js"
import { LmFilterKind } from "./lm/filter.js"
import { LmParseKind } from "./lm/parse.js"
import { LmTasksKind } from "./lm/tasks.js"
import { LmTaskEvaluateKind } from "./lm/taskEvaluate.js"
import { HttpTeacherKind } from "./lm/teacher.js"
import { GgufTeacherKind } from "./lm/gguf.js"
import { GenerateKind } from "./generate.js"
import { MutualKind } from "./mutual.js"
import type { AnyNodeKind } from "./NodeKind.js"
import type { KindRegistry } from "./Registry.js"
import { emptyRegistry, register } from "./Registry.js"
import { TextKind } from "./text.js"
import { TokenizerKind } from "./tokenizer.js"
import { TrainKind } from "./train.js"

export const builtinKinds: ReadonlyArray<AnyNodeKind> = [
  DatasetKind,
  TrainKind,
  GenerateKind,
  FilterKind,
  EvaluateKind,
  FeaturesKind,
  EnsembleKind,
  EvaluateSoftKind,
  MutualKind,
  TextKind,
  TokenizerKind,
  LmTrainKind,
  LmEvaluateKind,
  LmFilterKind,
  LmParseKind,
  LmTasksKind,
  LmTaskEvaluateKind,
  LmGenerateKind,
  LmScoreKind,
  HttpTeacherKind,
  GgufTeacherKind
]

export const builtinRegistry: KindRegistry = Either.getOrThrow(register(emptyRegistry, "built-in", builtinKinds))
