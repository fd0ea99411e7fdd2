import type { KV } from '@nats-io/kv';
import { StreamgradError } from '../core/errors.ts';

/** How long a listing of a bucket's keys may take: ample, as one takes milliseconds. */
export const LISTING_TIMEOUT_MS = 10_000;

/**
 * The keys of a KV bucket, each once, or `SG_ERR_SOURCE` naming the bucket (`what`) after
 * `timeoutMs`.
 *
 * Why bounded: the client's `keys()` lists through a consumer and ends at the entry that
 * reports nothing pending, or at an idle heartbeat. On a bucket whose entries expire or
 * are rewritten while it lists (leases, workers and gateways are renewed all the time)
 * that end can fail to come, and an unbounded listing once held a worker's balancing
 * round for good: it never took a partition again. Why a set: a renewal while the listing
 * runs can deliver a key twice (seen on a loaded machine).
 *
 * @example const live = await listKeys(cluster.workers, 'workers');
 */
export async function listKeys(kv: KV, what: string, timeoutMs = LISTING_TIMEOUT_MS): Promise<Set<string>> {
  const keys = new Set<string>();
  let listing: Awaited<ReturnType<KV['keys']>> | undefined;
  let expired: StreamgradError | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expired = new StreamgradError('SG_ERR_SOURCE', `listing the ${what} bucket's keys took longer than ${timeoutMs} ms`, what);
      listing?.stop(expired); // ends the consumer behind it too
      reject(expired);
    }, timeoutMs);
  });
  const list = async () => {
    listing = await kv.keys();
    if (expired !== undefined) listing.stop(expired); // the listing began after the time was up
    for await (const key of listing) keys.add(key);
    return keys;
  };
  try {
    return await Promise.race([list(), late]);
  } finally {
    clearTimeout(timer);
  }
}
