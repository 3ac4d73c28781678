import { assert, describe, it } from "@effect/vitest"
import { formatCsv, formatJson, formatNumber, formatTable } from "../../src/store/Format.js"
import type { QueryResult } from "../../src/store/ResultsStore.js"

const result: QueryResult = {
  columns: ["node", "step", "accuracy", "note"],
  types: ["VARCHAR", "INTEGER", "DOUBLE", "VARCHAR"],
  rows: [
    ["teacher", 1, 0.912345, "ok"],
    ["student", null, 12.5, "has, comma and \"quotes\""],
    ["s", 100, NaN, null]
  ]
}

describe("Format", () => {
  it("formats numbers to 4 significant decimals", () => {
    assert.strictEqual(formatNumber(3), "3")
    assert.strictEqual(formatNumber(-1234567), "-1234567")
    assert.strictEqual(formatNumber(0.912345), "0.9123")
    assert.strictEqual(formatNumber(0.000123456), "0.0001235")
    assert.strictEqual(formatNumber(12.345678), "12.3457")
    assert.strictEqual(formatNumber(1.5e-9), "1.500e-9")
    assert.strictEqual(formatNumber(2.5e20), "2.500e+20")
    assert.strictEqual(formatNumber(-Infinity), "-Infinity")
  })

  it("renders an aligned table: numbers right, text left, NULL as -", () => {
    assert.strictEqual(
      formatTable(result),
      [
        "node     step  accuracy  note",
        "-------  ----  --------  -----------------------",
        "teacher     1    0.9123  ok",
        "student     -   12.5000  has, comma and \"quotes\"",
        "s         100       NaN  -",
        "(3 rows)",
        ""
      ].join("\n")
    )
  })

  it("truncates long cells and escapes line breaks", () => {
    const text = formatTable(
      { columns: ["t", "j"], types: ["VARCHAR", "JSON"], rows: [["a".repeat(50), { k: [1, 2] }], ["x\ny", null]] },
      { maxCellWidth: 10, nullText: "", footer: false }
    )
    assert.strictEqual(text, ["t           j", "----------  ----------", "aaaaaaaaa…  {\"k\":[1,2…", "x\\ny", ""].join("\n"))
  })

  it("writes RFC 4180 CSV", () => {
    assert.strictEqual(
      formatCsv(result),
      "node,step,accuracy,note\r\n" +
        "teacher,1,0.912345,ok\r\n" +
        "student,,12.5,\"has, comma and \"\"quotes\"\"\"\r\n" +
        "s,100,NaN,\r\n"
    )
    assert.strictEqual(
      formatCsv({ columns: ["a"], types: ["VARCHAR"], rows: [["line\nbreak"], [{ x: 1 }]] }),
      "a\r\n\"line\nbreak\"\r\n\"{\"\"x\"\":1}\"\r\n"
    )
  })

  it("writes JSON as an array of objects", () => {
    assert.deepStrictEqual(JSON.parse(formatJson(result)), [
      { node: "teacher", step: 1, accuracy: 0.912345, note: "ok" },
      { node: "student", step: null, accuracy: 12.5, note: "has, comma and \"quotes\"" },
      { node: "s", step: 100, accuracy: "NaN", note: null }
    ])
    assert.strictEqual(
      formatJson({ columns: ["a", "a"], types: ["INTEGER", "INTEGER"], rows: [[1, 2]] }),
      "[{\"a\":1,\"a_1\":2}]"
    )
  })
})
