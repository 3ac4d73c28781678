/** Taking rows of row-major tables by example id: transfer sets, features and soft labels are each keyed by ids. */

/** The row of each of `ids` in a table whose rows are `tableIds`, or the first id it has no row for. */
export const rowsOf = (tableIds: ArrayLike<number>, ids: ArrayLike<number>): { readonly rows: Int32Array } | { readonly missing: number } => {
  const rowOf = new Map<number, number>()
  for (let r = 0; r < tableIds.length; r++) rowOf.set(tableIds[r]!, r)
  const rows = new Int32Array(ids.length)
  for (let i = 0; i < ids.length; i++) {
    const r = rowOf.get(ids[i]!)
    if (r === undefined) return { missing: ids[i]! }
    rows[i] = r
  }
  return { rows }
}

/** Rows `rows` of a row-major table of `width` values a row, in that order. */
export const takeRows = (values: Float32Array, width: number, rows: Int32Array): Float32Array => {
  const out = new Float32Array(rows.length * width)
  rows.forEach((r, i) => out.set(values.subarray(r * width, (r + 1) * width), i * width))
  return out
}
