/**
 * A fixed-length columnar series: `columns` Float64Arrays of `capacity + 2` rows, allocated
 * once. It keeps the whole run at an even spacing: one row per `stride` pushes (the first
 * of each group), and when full it keeps every second row and doubles the stride. The
 * newest push is always visible as an extra last row (the "tip"), so a chart's end is
 * never stale. Memory never grows, however long the page stays open.
 */
export class SeriesBuffer {
  readonly columns: Float64Array[];
  /** Rows of completed groups. */
  private committed = 0;
  /** Pushes into the current group (its first is row `committed`, the newest row `committed + 1`). */
  private pending = 0;
  private strideValue = 1;

  constructor(readonly capacity: number, columnCount: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 4) throw new RangeError(`capacity must be an integer >= 4, got ${capacity}`);
    this.columns = Array.from({ length: columnCount }, () => new Float64Array(capacity + 2));
  }

  /** Rows visible: the groups, the current group's first row, and the tip. */
  get length(): number {
    return this.committed + Math.min(this.pending, 2);
  }

  /** One kept row per this many pushes. */
  get stride(): number {
    return this.strideValue;
  }

  /** Appends a row (one value per column). */
  push(values: ArrayLike<number>): void {
    if (this.pending >= this.strideValue) {
      // the current group is complete: keep its first row, start the next group
      this.committed++;
      this.pending = 0;
      if (this.committed >= this.capacity) this.compact();
    }
    const row = this.pending === 0 ? this.committed : this.committed + 1;
    for (let c = 0; c < this.columns.length; c++) this.columns[c][row] = values[c];
    this.pending++;
  }

  /** Column `c`'s visible rows (a view, valid until the next push). */
  column(c: number): Float64Array {
    return this.columns[c].subarray(0, this.length);
  }

  /** The newest value of column `c` (NaN when empty). */
  last(c: number): number {
    const n = this.length;
    return n === 0 ? Number.NaN : this.columns[c][n - 1];
  }

  clear(): void {
    this.committed = 0;
    this.pending = 0;
    this.strideValue = 1;
  }

  private compact(): void {
    const half = this.committed >> 1;
    for (const column of this.columns) {
      for (let i = 0; i < half; i++) column[i] = column[2 * i];
    }
    this.committed = half;
    this.strideValue *= 2;
  }
}

/** A ring of the last `capacity` rows of fixed width (Float64Array, allocated once). */
export class RowRing {
  readonly data: Float64Array;
  private written = 0;

  constructor(readonly capacity: number, readonly width: number) {
    this.data = new Float64Array(capacity * width);
  }

  get length(): number {
    return Math.min(this.written, this.capacity);
  }

  /** Total rows ever pushed. */
  get total(): number {
    return this.written;
  }

  push(values: ArrayLike<number>, offset = 0): void {
    const slot = this.written % this.capacity;
    for (let k = 0; k < this.width; k++) this.data[slot * this.width + k] = values[offset + k];
    this.written++;
  }

  /** Value k of the i-th oldest row held. */
  get(i: number, k: number): number {
    const first = this.written - this.length;
    return this.data[((first + i) % this.capacity) * this.width + k];
  }

  clear(): void {
    this.written = 0;
  }
}
