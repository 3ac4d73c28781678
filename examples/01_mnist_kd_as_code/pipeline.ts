/**
 * The default pipeline (pipelines/mnist-kd.yaml) written as TypeScript. The builder's types check the
 * wiring at compile time (a Model cannot feed a Dataset input), and the resolved pipeline has the same
 * cache keys as the YAML one, so running either reuses the other's results.
 *
 *   npx tsx examples/01_mnist_kd_as_code/pipeline.ts
 */
import { pipeline } from "../../src/index.js"
import type { PipelineBuilder } from "../../src/index.js"
import { DatasetKind, EvaluateKind, GenerateKind, TrainKind } from "../../src/index.js"

export const mnistKd = (): PipelineBuilder => {
  const p = pipeline({
    name: "mnist-kd",
    description: "Hinton et al. (2015) MNIST distillation, teacher vs scratch student vs distilled student",
    seed: 1
  })
  const mnist = p.add("mnist", DatasetKind, { params: { source: "mnist", validation: 0.1, test: 0.2 } })
  const common = { optimizer: { type: "adam", learningRate: 0.001 }, batchSize: 128, epochs: 60, checkpoint: "best" } as const
  const teacher = p.add("teacher", TrainKind, {
    inputs: { data: mnist.dataset },
    params: { model: { type: "mlp", hidden: [800, 800], dropout: 0.5, inputDropout: 0.2 }, ...common }
  })
  const outputs = p.add("teacher_outputs", GenerateKind, {
    inputs: { model: teacher.model, data: mnist.dataset },
    params: { split: "train" }
  })
  const student = { type: "mlp", hidden: [128, 128] } as const
  const scratch = p.add("student_scratch", TrainKind, { inputs: { data: mnist.dataset }, params: { model: student, ...common } })
  const kd = p.add("student_kd", TrainKind, {
    inputs: { data: mnist.dataset, teacher: outputs.soft },
    params: { model: student, ...common, objective: { divergence: "forward_kl", temperature: 8, alpha: 0.9 } }
  })
  p.add("eval_teacher", EvaluateKind, { inputs: { model: teacher.model, data: mnist.dataset } })
  p.add("eval_scratch", EvaluateKind, { inputs: { model: scratch.model, data: mnist.dataset, teacher: teacher.model } })
  p.add("eval_kd", EvaluateKind, { inputs: { model: kd.model, data: mnist.dataset, teacher: teacher.model } })
  return p
}
