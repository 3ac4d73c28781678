/**
 * Adam as one compute dispatch per variable, for the `webgpu` backend. tfjs's AdamOptimizer runs about
 * fourteen kernels per variable and step and uploads fresh scalars for each; every kernel is a
 * dispatch with its own bind group and uniform buffer. On the 784-1200-1200-10 MLP that is 84 of a
 * step's 127 dispatches and two thirds of the time JS spends issuing it (bench/gpu.ts prints both),
 * which on a fast GPU is the step time. The formula and defaults are ../Adam.ts's. The moments live
 * in GPU buffers of our own (not tensors: nothing to leak, and never shared); the new θ goes to a
 * fresh tfjs buffer that the variable is assigned, so clones of the old value (a "best" checkpoint)
 * are never written to. The dispatch is recorded into the backend's own command encoder, in order
 * with its kernels.
 */
import * as tf from "@tensorflow/tfjs"
import type { AdamHyper, StepOptimizer } from "../Adam.js"
import { makeAdamOptimizer } from "../Adam.js"
import type { GpuBuffer } from "../WebGpu.js"
import { gpuUsage as usage, maxWorkgroups, webGpuBackend } from "../WebGpu.js"

const workgroupSize = 256

const shader = /* wgsl */ `
struct Hyper { h : vec4<f32>, c : vec2<f32>, n : u32 }
@group(0) @binding(0) var<storage, read_write> out : array<f32>;
@group(0) @binding(1) var<storage, read> p : array<f32>;
@group(0) @binding(2) var<storage, read> g : array<f32>;
@group(0) @binding(3) var<storage, read_write> m : array<f32>;
@group(0) @binding(4) var<storage, read_write> v : array<f32>;
@group(0) @binding(5) var<uniform> u : Hyper;

@compute @workgroup_size(${workgroupSize})
fn main(@builtin(global_invocation_id) id : vec3<u32>, @builtin(num_workgroups) groups : vec3<u32>) {
  let lr = u.h.x; let b1 = u.h.y; let b2 = u.h.z; let eps = u.h.w;
  let stride = groups.x * ${workgroupSize}u;
  for (var i = id.x; i < u.n; i = i + stride) {
    let gi = g[i];
    let mi = b1 * m[i] + (1.0 - b1) * gi;
    let vi = b2 * v[i] + (1.0 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    out[i] = p[i] - lr * (mi * u.c.x) / (sqrt(vi * u.c.y) + eps);
  }
}
`

export const makeWebGpuAdam = (h: AdamHyper): StepOptimizer => {
  const backend = webGpuBackend()
  const device = backend.device
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module: device.createShaderModule({ code: shader }), entryPoint: "main" }
  })
  const layout = pipeline.getBindGroupLayout(0)
  const buffer = (t: tf.TensorInfo): unknown => {
    backend.uploadToGPU(t.dataId)
    return backend.tensorMap.get(t.dataId)!.resource
  }
  return makeAdamOptimizer<{ readonly m: GpuBuffer; readonly v: GpuBuffer }>(h, {
    // WebGPU zero-fills new buffers.
    moments: (size) => ({
      m: device.createBuffer({ size: size * 4, usage: usage.storage | usage.copySrc | usage.copyDst }),
      v: device.createBuffer({ size: size * 4, usage: usage.storage | usage.copySrc | usage.copyDst })
    }),
    update: (variable, g, state, c1, c2) => {
      const out = backend.makeTensorInfo([...variable.shape], "float32")
      const resources = [buffer(out), buffer(variable), buffer(g), state.m, state.v]
      const uniforms = backend.makeUniforms([
        { type: "float32", data: [h.learningRate, h.beta1, h.beta2, h.epsilon] },
        { type: "float32", data: [c1, c2] },
        { type: "uint32", data: [variable.size] }
      ])
      const group = device.createBindGroup({
        layout,
        entries: [...resources.map((b) => ({ buffer: b })), uniforms].map((resource, binding) => ({ binding, resource }))
      })
      // Held until the queue is submitted, as the backend does for its own kernels' operands.
      for (const id of [out.dataId, variable.dataId, g.dataId]) backend.commandQueueOwnedIds.add(id)
      backend.ensureCommandEncoderReady()
      backend.computePassEncoder ??= backend.commandEncoder!.beginComputePass({})
      backend.computePassEncoder.setPipeline(pipeline)
      backend.computePassEncoder.setBindGroup(0, group)
      backend.computePassEncoder.dispatchWorkgroups(Math.min(maxWorkgroups, Math.ceil(variable.size / workgroupSize)))
      backend.dispatchCountInPass++
      if (backend.dispatchCountInPass >= (tf.env().get("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE") as number)) {
        backend.endComputePassEncoder()
        backend.submitQueue()
      }
      return out
    },
    dispose: (all) => {
      // Commands still being recorded may use the moments: submit them before the buffers go.
      backend.endComputePassEncoder()
      if (backend.commandEncoder !== null) backend.submitQueue()
      for (const { m, v } of all) {
        m.destroy()
        v.destroy()
      }
    }
  })
}
