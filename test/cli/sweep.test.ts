/**
 * `distillery sweep` end to end, as a user runs it: a real process (under tsx, with worker threads)
 * on a tiny two-moons sweep in a temporary store, where one param value makes a trial fail.
 */
import { assert, describe, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { cli } from "../fixtures/cli.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-sweep-cli-"))
const store = join(dir, "store")
const file = join(dir, "sweep.yaml")
writeFileSync(file, `name: moons-sweep
seed: 7
nodes:
  - id: moons
    kind: dataset
    params: { source: two_moons, examples: 200 }
  - id: teacher
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [16] }, epochs: 3, batchSize: 32 }
  - id: soft
    kind: generate
    inputs: { model: teacher, data: moons }
  - id: student
    kind: train
    inputs: { data: moons, teacher: soft }
    params: { model: { type: mlp, hidden: [4] }, epochs: 3, batchSize: 32, objective: { divergence: forward_kl, temperature: 2 } }
  - id: eval_student
    kind: evaluate
    inputs: { model: student, data: moons }
sweep:
  grid:
    soft.params.topk: [2, 5]       # two_moons has 2 classes: topk 5 fails when it runs
  seeds: 2
`)


describe("distillery sweep", () => {
  it("runs trials on worker threads, isolates a failing trial, and resumes from the cache", async () => {
    const first = await cli("sweep", file, "--store", store, "--backend", "cpu", "--workers", "2")
    assert.strictEqual(first.code, 3, first.stderr)
    // In a log (not a terminal), one line per finished trial.
    assert.match(first.stderr, /✓ trial 0\/4 \(topk=2 seed=7\) succeeded in .*: 5 executed, 0 cached/)
    assert.match(first.stderr, /✗ trial 2\/4 \(topk=5 seed=7\) failed .*node 'soft': topk is 5 but the teacher has only 2 classes/)
    assert.match(first.stdout, /accuracy: mean ± 95% CI over 2 seeds/)
    assert.match(first.stdout, /4 trials, 2 succeeded \(0 all cached\), 2 failed/)
    assert.include(first.stderr, "fix the cause and run the sweep again to resume")
    assert.notInclude(first.stderr, "    at ")

    const again = await cli("sweep", file, "--store", store, "--backend", "cpu", "--workers", "2")
    assert.strictEqual(again.code, 3, again.stderr)
    assert.match(again.stdout, /4 trials, 2 succeeded \(2 all cached\), 2 failed/)
    // The failed trials were retried (and failed again); the teacher was not retrained.
    assert.match(again.stderr, /✗ trial 3\/4 \(topk=5 seed=8\) failed .*: 0 executed, 2 cached; node 'soft'/)

    const show = await cli("show", "last", "--store", store)
    assert.strictEqual(show.code, 0, show.stderr)
    assert.match(show.stdout, /moons-sweep\s+\S+\s+failed\s+4/)
    assert.match(show.stdout, /failed trials/)
    const ls = await cli("ls", "--store", store)
    assert.match(ls.stdout, /sweeps\n/)
    assert.match(ls.stdout, /no stand-alone runs/)
  })
})
