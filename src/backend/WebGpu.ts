/**
 * The slice of WebGPU, and of tfjs-backend-webgpu's WebGPUBackend (4.22), that Distillery's own
 * kernels use (webgpu/Adam.ts records into tfjs's command encoder; webgpu/FusedMlp.ts runs a whole
 * training step of its own on tfjs's device). Typed here rather than with @webgpu/types, so that
 * nothing depends on the optional packages at compile time.
 */
import * as tf from "@tensorflow/tfjs"
import * as fs from "node:fs"

export interface GpuBuffer {
  destroy(): void
  mapAsync(mode: number): Promise<void>
  getMappedRange(): ArrayBuffer
  unmap(): void
}

export interface GpuPass {
  setPipeline(pipeline: unknown): void
  setBindGroup(index: number, group: unknown): void
  dispatchWorkgroups(x: number, y?: number, z?: number): void
  end(): void
}

export interface GpuEncoder {
  beginComputePass(descriptor?: object): GpuPass
  copyBufferToBuffer(src: GpuBuffer, srcOffset: number, dst: GpuBuffer, dstOffset: number, size: number): void
  finish(): unknown
}

export interface GpuQueue {
  submit(buffers: Array<unknown>): void
  writeBuffer(buffer: GpuBuffer, offset: number, data: ArrayBufferView | ArrayBuffer): void
  onSubmittedWorkDone(): Promise<void>
}

export interface GpuPipeline {
  getBindGroupLayout(i: number): unknown
}

export interface GpuDevice {
  readonly limits: { readonly maxStorageBufferBindingSize: number; readonly minStorageBufferOffsetAlignment: number }
  readonly queue: GpuQueue
  createShaderModule(d: { code: string }): unknown
  createComputePipeline(d: object): GpuPipeline
  createBindGroup(d: object): unknown
  createBuffer(d: { size: number; usage: number }): GpuBuffer
  createCommandEncoder(): GpuEncoder
  pushErrorScope(filter: "validation" | "out-of-memory"): void
  popErrorScope(): Promise<{ readonly message: string } | null>
}

export interface WebGpuBackendLike {
  readonly device: GpuDevice
  readonly tensorMap: { get(dataId: object): { resource: unknown } | undefined }
  commandEncoder: GpuEncoder | null
  computePassEncoder: GpuPass | null
  dispatchCountInPass: number
  readonly commandQueueOwnedIds: { add(dataId: object): void }
  ensureCommandEncoderReady(): void
  endComputePassEncoder(): void
  submitQueue(): void
  uploadToGPU(dataId: object): void
  makeTensorInfo(shape: Array<number>, dtype: "float32"): tf.TensorInfo
  makeUniforms(uniforms: Array<{ type: "float32" | "uint32"; data: Array<number> }>): object
}

/** GPUBufferUsage's flags (the globals exist only once the `webgpu` package is loaded). */
export const gpuUsage = { mapRead: 0x1, copySrc: 0x4, copyDst: 0x8, uniform: 0x40, storage: 0x80 } as const
/** GPUMapMode.READ. */
export const mapModeRead = 0x1
/** The WebGPU minimum for maxComputeWorkgroupsPerDimension; larger element-wise kernels loop. */
export const maxWorkgroups = 65535

/** True when the active tfjs backend is tfjs-backend-webgpu's, with the internals used here. */
export const isWebGpuBackend = (): boolean => {
  if (tf.getBackend() !== "webgpu") return false
  const b = tf.backend() as unknown as Partial<WebGpuBackendLike>
  return b.device !== undefined && typeof b.makeUniforms === "function" && typeof b.uploadToGPU === "function"
}

export const webGpuBackend = (): WebGpuBackendLike => tf.backend() as unknown as WebGpuBackendLike

/** Submits whatever tfjs has recorded, so that commands submitted after it run after it. */
export const flushTfjs = (backend: WebGpuBackendLike): void => {
  if (backend.commandEncoder !== null) {
    backend.endComputePassEncoder()
    backend.submitQueue()
  }
}

/** Chromium's SwiftShader, a software Vulkan driver (Debian's chromium package ships it). */
const swiftShaderIcd = "/usr/lib/chromium/vk_swiftshader_icd.json"

/**
 * Adds SwiftShader to the drivers the Vulkan loader knows (added, not replacing: a GPU's driver is
 * still found first), so that WebGPU has an adapter on a machine without a GPU: the tests and
 * `bench/gpu.ts --software` use it. Must run before Dawn's first adapter request. False when
 * Chromium's SwiftShader is not installed.
 */
export const addSoftwareVulkanDriver = (): boolean => {
  if (!fs.existsSync(swiftShaderIcd)) return false
  const drivers = (process.env["VK_ADD_DRIVER_FILES"] ?? "").split(":").filter((f) => f !== "")
  if (!drivers.includes(swiftShaderIcd)) process.env["VK_ADD_DRIVER_FILES"] = [...drivers, swiftShaderIcd].join(":")
  return true
}
