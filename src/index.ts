/**
 * The public SDK: what pipelines-as-code and plugins import. Node kinds and plugins, the pipeline
 * builder and loader, the executor and its services, the objectives, and the artifact types.
 */
export type {
  Artifact,
  Dataset,
  Features,
  LanguageModel,
  Metrics,
  Model,
  PortType,
  SoftLabels,
  Split,
  SplitName,
  TextCorpus,
  Tokenizer,
  Weight
} from "./domain/Artifact.js"
export { featureSize, parameterCount } from "./domain/Artifact.js"
export { deriveSeed, makeRng, permutation } from "./domain/Random.js"
export type { Rng } from "./domain/Random.js"

export type { ExampleRow, InputSpec, MetricRow, NodeContext, NodeKind, Progress } from "./nodes/NodeKind.js"
export { defineKind, NodeError } from "./nodes/NodeKind.js"
export type { KindRegistry, Plugin } from "./nodes/Registry.js"
export { definePlugin, loadPlugin, PluginError, register, RegistryError, withPlugins } from "./nodes/Registry.js"
export { builtinKinds, builtinRegistry } from "./nodes/builtins.js"
export { DatasetKind, DatasetParams } from "./nodes/dataset.js"
export { TrainKind, TrainParams } from "./nodes/train.js"
export { GenerateKind, GenerateParams } from "./nodes/generate.js"
export { FilterKind, FilterParams } from "./nodes/filter.js"
export { EvaluateKind, EvaluateParams } from "./nodes/evaluate.js"
export { FeaturesKind } from "./nodes/features.js"
export { EnsembleKind, EvaluateSoftKind } from "./nodes/ensemble.js"
export { MutualKind } from "./nodes/mutual.js"
export { TextKind, TextParams } from "./nodes/text.js"
export { TokenizerKind, TokenizerParams } from "./nodes/tokenizer.js"
export { LmEvaluateKind, LmEvaluateParams } from "./nodes/lm/evaluate.js"
export { LmGenerateKind, LmGenerateParams, LmScoreKind, LmScoreParams } from "./nodes/lm/generate.js"
export { LmTrainKind, LmTrainParams } from "./nodes/lm/train.js"
export { LmFilterKind, LmFilterParams, sftCorpus } from "./nodes/lm/filter.js"
export { LmParseKind, LmParseParams } from "./nodes/lm/parse.js"
export { HttpTeacherKind, HttpTeacherParams } from "./nodes/lm/teacher.js"
export { GgufTeacherKind, GgufTeacherParams } from "./nodes/lm/gguf.js"
export { decode, encode, load as loadTokenizer, save as saveTokenizer } from "./tokenizer/Tokenizer.js"
export { bytesTokenizer } from "./tokenizer/Bytes.js"
export { trainBpe } from "./tokenizer/Bpe.js"

export type { Pipeline, PipelineDoc, ResolvedNode } from "./pipeline/Pipeline.js"
export { PipelineError } from "./pipeline/Pipeline.js"
export type { OutputRef, PipelineBuilder } from "./pipeline/Builder.js"
export { pipeline } from "./pipeline/Builder.js"
export { loadPipelineFile, parseYaml } from "./pipeline/Yaml.js"
export { resolvePipeline } from "./pipeline/Validate.js"

export type { NodeOutcome, RunOptions, RunResult, StoredResult } from "./dag/Executor.js"
export { Executor, pipelineCacheKeys, RunFailedError } from "./dag/Executor.js"
export { Reporter } from "./dag/Reporter.js"
export { ArtifactStore } from "./cache/ArtifactStore.js"
export { ResultsStore } from "./store/ResultsStore.js"
export { TfBackend } from "./backend/TfBackend.js"
export type { BackendName } from "./backend/TfBackend.js"

export { describeObjective, divergenceNames, objectiveLoss, ObjectiveSpec } from "./losses/Objective.js"
export { ModelSpec } from "./models/ModelSpec.js"
export type { GgufHeader, GgufOptions, GgufSource } from "./formats/Gguf.js"
export { readGguf, writeGguf } from "./formats/Gguf.js"

export type { Sweep, SweepDoc, SweepTrial } from "./pipeline/SweepGrammar.js"
export { resolveSweep } from "./pipeline/SweepGrammar.js"
export { loadSweepFile } from "./pipeline/Yaml.js"
export type { SweepOptions, SweepResult, TrialOutcome } from "./dag/SweepRunner.js"
export { runSweep, SweepReporter } from "./dag/SweepRunner.js"
export { WorkerPool } from "./dag/WorkerPool.js"
