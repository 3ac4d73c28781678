/**
 * The language-model distillation experiment (pipelines/lm-kd.yaml) written as TypeScript: a BPE
 * teacher on Brown and a 12x smaller student trained six ways, each measured on held-out text and on
 * its own samples, swept over 3 seeds. Where the YAML shares params through anchors, the code shares
 * objects; the built pipeline and its trials have the same cache keys as the YAML ones, so running
 * either reuses the other's results.
 *
 *   npx tsx examples/02_lm_kd_as_code/run.ts
 */
import type { PipelineBuilder } from "../../src/index.js"
import {
  LmEvaluateKind,
  LmFilterKind,
  LmGenerateKind,
  LmTrainKind,
  pipeline,
  TextKind,
  TokenizerKind
} from "../../src/index.js"

export const lmKd = (): PipelineBuilder => {
  const p = pipeline({
    name: "lm-kd",
    description: "A 2M-parameter BPE teacher LM on Brown and a 12x smaller student trained six ways, on 3 seeds",
    seed: 1
  })
  const brown = p.add("brown", TextKind, { seed: 1, params: { source: "brown", validation: 0.04, test: 0.06 } })
  const bpe = p.add("bpe", TokenizerKind, { seed: 1, inputs: { corpus: brown.corpus }, params: { type: "bpe", vocabSize: 1024 } })
  const data = { corpus: brown.corpus, tokenizer: bpe.tokenizer }
  const teacher = p.add("teacher", LmTrainKind, {
    seed: 1,
    inputs: data,
    params: {
      model: { type: "transformer", layers: 4, width: 192, heads: 6, context: 128 },
      batchSize: 16,
      steps: 500,
      evalEvery: 100,
      warmupSteps: 30,
      gradClip: 1,
      optimizer: { type: "adamw", learningRate: 0.003 }
    }
  })
  const student = {
    model: { type: "transformer", layers: 2, width: 64, heads: 4, context: 128 },
    batchSize: 16,
    steps: 200,
    evalEvery: 50,
    warmupSteps: 20,
    gradClip: 1,
    optimizer: { type: "adamw", learningRate: 0.005 }
  } as const
  const warm = { ...student, steps: 100, evalEvery: 50, warmupSteps: 10, optimizer: { type: "adamw", learningRate: 0.002 } } as const

  const scratch = p.add("scratch", LmTrainKind, { inputs: data, params: student })
  const forwardKl = p.add("forward_kl", LmTrainKind, {
    inputs: { ...data, teacher: teacher.model },
    params: { ...student, objective: { divergence: "forward_kl", temperature: 1, alpha: 0.5 } }
  })
  const reverseKl = p.add("reverse_kl", LmTrainKind, {
    inputs: { ...data, teacher: teacher.model, init: scratch.model },
    params: { ...warm, objective: { divergence: "reverse_kl", temperature: 1, alpha: 0.5 } }
  })
  const samples = p.add("teacher_samples", LmGenerateKind, {
    seed: 1,
    inputs: { model: teacher.model, corpus: brown.corpus },
    params: { split: "train", promptTokens: 32, n: 2, temperature: 1, maxNewTokens: 64, batchSize: 32 }
  })
  const sft = p.add("sft_data", LmFilterKind, {
    inputs: { samples: samples.generations, corpus: brown.corpus },
    params: { minTokens: 16, minMeanLogProb: -6, dedupe: "exact", nearDuplicate: { threshold: 0.8, n: 5 }, train: "mix" }
  })
  const seqKd = p.add("seq_kd", LmTrainKind, { inputs: { corpus: sft.corpus, tokenizer: bpe.tokenizer }, params: student })
  const onPolicy = p.add("on_policy", LmTrainKind, {
    inputs: { ...data, teacher: teacher.model, init: scratch.model },
    params: {
      ...warm,
      objective: { divergence: "generalized_jsd", beta: 0.5, temperature: 1, alpha: 0.5 },
      onPolicy: { lambda: 0.5, promptTokens: 32, maxNewTokens: 32, temperature: 1 }
    }
  })
  const scratchMore = p.add("scratch_more", LmTrainKind, {
    inputs: { ...data, init: scratch.model },
    params: { ...warm, objective: { divergence: "none" } }
  })

  const gen = { split: "test", limit: 32, promptTokens: 32, n: 2, maxNewTokens: 48, batchSize: 32 } as const
  const evaluation = { maxWindows: 256, batchSize: 32 } as const
  const models = { teacher, scratch, forward_kl: forwardKl, reverse_kl: reverseKl, seq_kd: seqKd, on_policy: onPolicy, scratch_more: scratchMore }
  for (const [name, node] of Object.entries(models)) {
    const pinned = name === "teacher" ? { seed: 1 } : {}
    const generated = p.add(`gen_${name}`, LmGenerateKind, { ...pinned, inputs: { model: node.model, corpus: brown.corpus }, params: gen })
    p.add(`eval_${name}`, LmEvaluateKind, {
      ...pinned,
      inputs: { model: node.model, corpus: brown.corpus, teacher: teacher.model, samples: generated.generations },
      params: evaluation
    })
  }
  return p.sweep({ seeds: 3, baseline: "scratch" })
}
