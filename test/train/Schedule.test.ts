import { assert, describe, it } from "@effect/vitest"
import { warmupCosine } from "../../src/train/Schedule.js"

describe("warmupCosine", () => {
  it("warms up linearly, then decays by a cosine from peak to minRatio x peak", () => {
    const lr = warmupCosine({ peak: 1, warmupSteps: 4, totalSteps: 14, minRatio: 0.1 })
    assert.deepStrictEqual([0, 1, 2, 3].map(lr), [0.25, 0.5, 0.75, 1])
    assert.closeTo(lr(4), 1, 1e-12) // first step after warm-up: the peak
    assert.closeTo(lr(13), 0.1, 1e-12) // last step: the floor
    // Halfway through the 9 decay steps: min + (peak - min) / 2.
    assert.closeTo(warmupCosine({ peak: 2, warmupSteps: 0, totalSteps: 11, minRatio: 0 })(5), 1, 1e-12)
    for (let t = 4; t < 13; t++) assert.isTrue(lr(t + 1) < lr(t))
  })

  it("without warm-up starts at the peak; one step is the peak", () => {
    assert.closeTo(warmupCosine({ peak: 0.3, warmupSteps: 0, totalSteps: 5, minRatio: 0.1 })(0), 0.3, 1e-15)
    assert.strictEqual(warmupCosine({ peak: 0.3, warmupSteps: 0, totalSteps: 1, minRatio: 0.1 })(0), 0.3)
  })
})
