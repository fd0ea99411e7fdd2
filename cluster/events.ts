/** Something a cluster worker did or saw, for logs, status and tests (one JSON line each from `streamgrad cluster worker`). */
export interface ClusterEvent {
  readonly type:
    | 'joined' | 'acquired' | 'restored' | 'cut' | 'committed' | 'commit-rejected' | 'commit-failed'
    | 'lease-lost' | 'handback' | 'released' | 'partition-failed' | 'partition-parked' | 'left'
    /** A partition's failure record was not readable (detail: code, message, field naming bucket and key): read as none. */
    | 'record-damaged';
  readonly worker: string;
  /** The partition concerned (absent for the worker's own `joined` and `left`). */
  readonly partition?: number;
  /** Wall-clock time (ms since the epoch). */
  readonly time: number;
  readonly detail?: Readonly<Record<string, unknown>>;
}
