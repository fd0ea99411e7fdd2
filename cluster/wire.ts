/**
 * JSON for telemetry that keeps what plain JSON loses: non-finite numbers (`NaN`, `±Infinity`,
 * e.g. a skipped step's gradient norm) and `Float64Array`s (weights, prediction rows) bit for bit.
 *
 * @example decodeWire(encodeWire({ norm: NaN, w: new Float64Array([1, 2]) }))
 */
export function encodeWire(value: unknown): string {
  return JSON.stringify(value, function replacer(this: Record<string, unknown>, key: string) {
    const v = this[key];
    if (typeof v === 'number' && !Number.isFinite(v)) return { $n: String(v) };
    if (v instanceof Float64Array) return { $f64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
    return v;
  });
}

/** The value `encodeWire` encoded. */
export function decodeWire<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      if (typeof o.$n === 'string' && Object.keys(o).length === 1) return Number(o.$n);
      if (typeof o.$f64 === 'string' && Object.keys(o).length === 1) {
        const bytes = Buffer.from(o.$f64, 'base64');
        const copy = new Uint8Array(bytes.byteLength);
        copy.set(bytes);
        return new Float64Array(copy.buffer);
      }
    }
    return v;
  }) as T;
}

/**
 * The JSON object in a stored value or a reply, or null when it is not one (not JSON, or
 * JSON but not an object): what a reader of a KV record or a NATS reply checks first, since
 * any peer can write there (a record that is not one costs only itself, never the process).
 *
 * @example parseObject('garbage') // null
 */
export function parseObject(text: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}
