/**
 * The partition of a sensor or stream key: FNV-1a (32 bit) of its UTF-8 bytes modulo
 * `partitions`. Stable across processes, machines and versions (it is part of the data
 * layout: changing it would move keys between models), and cheap.
 *
 * @example partitionOf('sensor-17', 8) // always the same partition in 0..7
 */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  const bytes = new TextEncoder().encode(key);
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}
