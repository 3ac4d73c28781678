/**
 * The values that flow along a pipeline's edges. Each port of a node kind is typed by one of these
 * `PortType`s; the executor checks wiring against them before anything runs. Artifacts hold their bulk
 * data in typed arrays so that the artifact codec stores them as raw bytes.
 */

/** The kinds of value a port can carry. */
export const PortTypes = ["Dataset", "SoftLabels", "Model", "Metrics", "Features", "TextCorpus", "Tokenizer", "LanguageModel", "Generations", "Teacher"] as const
export type PortType = (typeof PortTypes)[number]

/**
 * Whether an input port of type `input` takes an output of type `output`: the same type, or a
 * `LanguageModel` where a `Teacher` is asked for (a Distillery model is one source of teacher samples
 * among others; the reverse does not hold, since an endpoint has no weights to train, score or export).
 */
export const portAccepts = (input: PortType, output: PortType): boolean => input === output || (input === "Teacher" && output === "LanguageModel")

/** One split of a dataset: N examples, features row-major (N, ...featureShape), labels (N). */
export interface Split {
  /** (N * prod(featureShape)) features, row-major. */
  readonly x: Float32Array
  /** (N) class labels; -1 marks an unlabelled example. */
  readonly y: Int32Array
  /** (N) stable example ids (the index in the source), so results can be joined across nodes. */
  readonly ids: Int32Array
}

export type SplitName = "train" | "validation" | "test"
export const SplitNames: ReadonlyArray<SplitName> = ["train", "validation", "test"]

export interface Dataset {
  readonly _tag: "Dataset"
  readonly name: string
  /** Shape of one example's features, e.g. [784] or [28, 28, 1]. */
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  readonly classNames: ReadonlyArray<string>
  readonly splits: { readonly train: Split; readonly validation: Split; readonly test: Split }
}

/**
 * A teacher's outputs over a transfer set, at temperature 1, so one generation serves every temperature.
 * Dense: `logits` is (N, C). Sparse (top-k): `topk` holds the k largest logits per example and the
 * log-sum-exp of the remaining C - k logits, from which the divergences rebuild a tail bucket.
 */
export interface SoftLabels {
  readonly _tag: "SoftLabels"
  /** Which split of the source dataset these examples come from. */
  readonly split: SplitName
  readonly numClasses: number
  /** (N) example ids in the source dataset's split. */
  readonly ids: Int32Array
  /** (N) ground-truth labels (-1 when unknown). */
  readonly labels: Int32Array
  /** (N, C) teacher logits at T = 1; absent when only the top-k are kept. */
  readonly logits?: Float32Array
  readonly topk?: {
    readonly k: number
    /** (N, k) class indices of the k largest logits, largest first. */
    readonly indices: Int32Array
    /** (N, k) their logits at T = 1. */
    readonly values: Float32Array
    /** (N) log-sum-exp at T = 1 of the C - k logits left out (-Infinity when k = C). */
    readonly tailLogSumExp: Float32Array
  }
  /** Names of the teachers that produced these outputs (several after an ensemble). */
  readonly teachers: ReadonlyArray<string>
}

/** One tensor of a trained model. */
export interface Weight {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly values: Float32Array
}

export interface Model {
  readonly _tag: "Model"
  /** The model spec it was built from (see models/ModelSpec.ts), as plain JSON. */
  readonly spec: unknown
  readonly featureShape: ReadonlyArray<number>
  readonly numClasses: number
  readonly weights: ReadonlyArray<Weight>
  /** How the returned weights were chosen, e.g. { checkpoint: "best", epoch: 7, epochs: 12 }. */
  readonly info: Readonly<Record<string, string | number | boolean>>
}

export interface Metrics {
  readonly _tag: "Metrics"
  /** The node whose model was evaluated. */
  readonly subject: string
  readonly values: Readonly<Record<string, number>>
}

/** A teacher layer's activations over a transfer set (FitNets hints). */
export interface Features {
  readonly _tag: "Features"
  readonly split: SplitName
  readonly layer: string
  /** The node id of the model whose layer this is (absent in artifacts cached before it was recorded). */
  readonly model?: string
  /** (N) example ids. */
  readonly ids: Int32Array
  /** Shape of one example's features. */
  readonly shape: ReadonlyArray<number>
  /** (N * prod(shape)) activations, row-major. */
  readonly values: Float32Array
}

/**
 * A text corpus: D documents, each with an id and its text, and for prompt/completion data the parts
 * (the text is then prompt + completion). Per-document fields are parallel arrays of strings, which
 * the artifact codec writes in its JSON part; splits are by document, so no document is in two.
 */
export interface TextCorpus {
  readonly _tag: "TextCorpus"
  readonly name: string
  /** (D) unique document ids: a file path, `file:line`, a record's id column, or Brown's `ca01`. */
  readonly ids: ReadonlyArray<string>
  /** (D) each document's whole text. */
  readonly texts: ReadonlyArray<string>
  /** (D) prompts (with `completions`) when the source has prompt/completion records. */
  readonly prompts?: ReadonlyArray<string>
  readonly completions?: ReadonlyArray<string>
  /** (D) reference answers and rationales when the source has them (null where a record has none). */
  readonly answers?: ReadonlyArray<string | null>
  readonly rationales?: ReadonlyArray<string | null>
  /** (D) the record's other columns, or facts such as Brown's genre. */
  readonly metadata?: ReadonlyArray<Readonly<Record<string, unknown>>>
  /**
   * (D) each document's loss weight in next-token cross-entropy (absent: 1 for all); a multi-task corpus
   * (lm_tasks) weights each task's documents by the task's weight.
   */
  readonly weights?: ReadonlyArray<number>
  /** (D) the task each document belongs to, in a multi-task corpus (lm_tasks). */
  readonly tasks?: ReadonlyArray<string>
  /** Document indices per split, ascending (source order). */
  readonly splits: { readonly train: Int32Array; readonly validation: Int32Array; readonly test: Int32Array }
}

/**
 * A tokenizer over bytes: ids 0..255 are the bytes, merge i (BPE) makes id 256 + i from the pair it
 * names, and the special tokens follow the merges. A byte-level tokenizer is the one with no merges.
 */
export interface Tokenizer {
  readonly _tag: "Tokenizer"
  readonly type: "bytes" | "bpe"
  /** 256 + merges + special tokens: the size of a model's embedding table. */
  readonly vocabSize: number
  /** (M, 2) the pairs merged, in merge order: row i is the (left, right) ids that make id 256 + i. */
  readonly merges: Int32Array
  /** Special token names to ids, e.g. { "<pad>": 256, "<bos>": 257, "<eos>": 258 } with no merges. */
  readonly special: Readonly<Record<string, number>>
  /** How text is cut into chunks before merging ("gpt2": the GPT-2 regex; "none": one chunk). */
  readonly pattern: "gpt2" | "none"
}

/**
 * A trained decoder-only language model: its transformer spec, its weights and the tokenizer it reads,
 * so that scoring, generation and export need nothing else. Apart from `Model`, whose feature shape
 * and class count describe classifiers.
 */
export interface LanguageModel {
  readonly _tag: "LanguageModel"
  /** The transformer spec (models/TransformerSpec.ts), as plain JSON with its defaults filled in. */
  readonly spec: unknown
  readonly tokenizer: Tokenizer
  readonly weights: ReadonlyArray<Weight>
  /** How the returned weights were chosen, e.g. { checkpoint: "best", steps: 40 }. */
  readonly info: Readonly<Record<string, string | number | boolean>>
}

/**
 * Samples of a language model: G rows, each one sample (`sample`-th of n) continuing one prompt (or
 * none: unconditional), as tokens of `tokenizer` and as text. Token sequences are flat with offsets:
 * row g's prompt is `promptTokens[promptOffsets[g] .. promptOffsets[g + 1])`, its generated tokens
 * `tokens[offsets[g] .. offsets[g + 1])`. `scores`, when present, is a scoring model's view of every
 * generated position p (flat over the rows, in `tokens` order): its top-k next-token log-probabilities
 * and the log of the probability left to the other V - k tokens (the k + 1 bucket rule of SoftLabels,
 * here in log-probability space), so token-level distillation can run later without that model.
 */
export interface Generations {
  readonly _tag: "Generations"
  /** The tokenizer of every token here. */
  readonly tokenizer: Tokenizer
  /** The node whose model sampled these. */
  readonly generator: string
  /** Where the prompts came from, e.g. "brown:test", "prompts.jsonl", "unconditional". */
  readonly source: string
  /** (G) the prompt's document id (the same for the n samples of one prompt). */
  readonly promptIds: ReadonlyArray<string>
  /** (G) which of the prompt's n samples this row is, 0-based. */
  readonly sample: Int32Array
  /** (G) the seed this row's draws came from: it alone decides the sample (no dependence on batch order). */
  readonly seeds: Int32Array
  /** (G) prompt text and generated text. */
  readonly prompts: ReadonlyArray<string>
  readonly texts: ReadonlyArray<string>
  readonly promptTokens: Int32Array
  /** (G + 1) */
  readonly promptOffsets: Int32Array
  readonly tokens: Int32Array
  /** (G + 1) */
  readonly offsets: Int32Array
  /** (G) "stop" (a stop token or string), "length" (max new tokens), "context" (the model's context is full). */
  readonly finishReasons: ReadonlyArray<"stop" | "length" | "context">
  /** (G) the generator's mean log-probability per generated token (untempered, unfiltered distribution). */
  readonly meanLogProb: Float32Array
  /** (G) the reference answer of the prompt's record, where the data has one (null where not). */
  readonly answers?: ReadonlyArray<string | null>
  /** The sampler settings: temperature, topK, topP, minP, maxNewTokens, stop strings, n, seed. */
  readonly settings: Readonly<Record<string, unknown>>
  /** Generated tokens per second of wall time while sampling. */
  readonly tokensPerSecond: number
  readonly scores?: {
    /** The node whose model scored the generated positions. */
    readonly scorer: string
    readonly k: number
    /** (P, k) token ids of the k most likely next tokens, most likely first. */
    readonly indices: Int32Array
    /** (P, k) their log-probabilities. */
    readonly logProbs: Float32Array
    /** (P) log of the probability of the V - k tokens left out (-Infinity when k = V). */
    readonly tailLogProb: Float32Array
    /** (P) the scorer's log-probability of the token actually generated there. */
    readonly tokenLogProb: Float32Array
  }
}

/**
 * An OpenAI-compatible endpoint that samples a teacher (teachers/HttpTeacher.ts): where it is and how to
 * call it, never the API key itself, only the name of the environment variable that holds it.
 */
export interface TeacherEndpoint {
  readonly _tag: "TeacherEndpoint"
  /** The API's base URL, e.g. "http://127.0.0.1:8080/v1". */
  readonly baseUrl: string
  /** The model's id in requests. */
  readonly model: string
  /** Which route samples: /completions (text prompts, top-N log-probs per position) or /chat/completions. */
  readonly api: "completions" | "chat"
  /** The environment variable holding the API key, read when requests are made; absent: no key sent. */
  readonly apiKeyEnv?: string
  /** Requests in flight at once. */
  readonly concurrency: number
  readonly requestsPerMinute?: number
  readonly tokensPerMinute?: number
  readonly timeoutSeconds: number
  /** Retries per request after the first attempt (429, 5xx, timeouts, refused connections). */
  readonly retries: number
  /** Alternatives per generated position asked for (0: none). */
  readonly topLogprobs: number
  /** The fraction of requests that may still fail after their retries before a node using it fails. */
  readonly maxFailureFraction: number
  /** Dollars per million tokens in and out, for the cost metric. */
  readonly price: { readonly input: number; readonly output: number }
  /** The directory responses are cached in (`<store>/responses`), or absent for no cache (an in-memory store). */
  readonly responses?: string
}

/**
 * A GGUF model file that samples and scores a teacher in-process through llama.cpp
 * (teachers/GgufTeacher.ts): the file as it was when described (absolute path, size, mtime, sha256),
 * how to run it, and its vocabulary as a Distillery tokenizer when Distillery can represent it.
 */
export interface GgufTeacherFile {
  readonly _tag: "GgufTeacherFile"
  /** The file's absolute path. */
  readonly path: string
  readonly size: number
  readonly mtimeMs: number
  readonly sha256: string
  /** `general.architecture`, e.g. "llama". */
  readonly architecture: string
  /** `general.name`, when the file has one. */
  readonly name?: string
  /** Tokens in the file's vocabulary (`tokenizer.ggml.tokens`). */
  readonly vocabSize: number
  /** The context the model was trained with (`<architecture>.context_length`; 0 when the file has none). */
  readonly trainContext: number
  /** Tokens one sequence (prompt + generated) may hold here. */
  readonly contextSize: number
  /** The KV cache's element type: f32 gives log-probs as exact as the weights allow. */
  readonly kvCache: "f32" | "f16"
  /** Threads llama.cpp evaluates with; absent: the machine's cores less one, at most 8. */
  readonly threads?: number
  /** The vocabulary as a Distillery tokenizer (byte-level or byte-level BPE in the order Distillery numbers them); absent: text only. */
  readonly tokenizer?: Tokenizer
  /** Why `tokenizer` is absent, or what it is, in words. */
  readonly vocabulary: string
  /** The end-of-sequence token's id in the file's vocabulary, when the file names one. */
  readonly eos?: number
  /** The beginning-of-sequence token's id, when the file names one and asks for it before a prompt. */
  readonly bos?: number
}

export interface PortValues {
  readonly Dataset: Dataset
  readonly SoftLabels: SoftLabels
  readonly Model: Model
  readonly Metrics: Metrics
  readonly Features: Features
  readonly TextCorpus: TextCorpus
  readonly Tokenizer: Tokenizer
  readonly LanguageModel: LanguageModel
  readonly Generations: Generations
  /** Samples through the teacher interface: an endpoint, a GGUF file, or a Distillery model. */
  readonly Teacher: TeacherEndpoint | GgufTeacherFile | LanguageModel
}

export type Artifact = PortValues[PortType]

export const featureSize = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

export const splitSize = (split: Split): number => split.y.length

/** Number of trainable parameters of a model artifact. */
export const parameterCount = (model: Pick<Model, "weights">): number =>
  model.weights.reduce((total, w) => total + w.values.length, 0)
