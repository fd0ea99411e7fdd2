import type { KV } from '@nats-io/kv';
import { StreamgradError } from '../core/errors.ts';

/** How long a listing of a bucket's keys may take in all: ample, as one takes milliseconds. */
export const LISTING_TIMEOUT_MS = 10_000;

/** How many fresh listings are tried within that time before giving up. */
export const LISTING_ATTEMPTS = 3;

/**
 * The keys of a KV bucket, each once, or `SG_ERR_SOURCE` naming the bucket (`what`) after
 * `timeoutMs`.
 *
 * Why bounded: the client's `keys()` lists through a consumer and ends at the entry that
 * reports nothing pending, or at an idle heartbeat. On a bucket whose entries expire or
 * are rewritten while it lists (leases, workers and gateways are renewed all the time)
 * that end can fail to come, and an unbounded listing once held a worker's balancing
 * round for good: it never took a partition again. Why retried: such a stuck listing is
 * a one-off of that consumer, and a fresh one lists in milliseconds, so the time is cut
 * into `attempts` slices and a listing stuck past its slice is stopped and begun again
 * (one stuck listing, waited out for the whole bound, once failed a status call under
 * load). Why a set: a renewal while the listing runs can deliver a key twice (seen on a
 * loaded machine).
 *
 * @example const live = await listKeys(cluster.workers, 'workers');
 */
export async function listKeys(kv: KV, what: string, timeoutMs = LISTING_TIMEOUT_MS, attempts = LISTING_ATTEMPTS): Promise<Set<string>> {
  const slice = Math.ceil(timeoutMs / attempts);
  for (let attempt = 1; ; attempt++) {
    const keys = await listOnce(kv, slice);
    if (keys !== undefined) return keys;
    if (attempt >= attempts) {
      throw new StreamgradError('SG_ERR_SOURCE', `listing the ${what} bucket's keys took longer than ${timeoutMs} ms (${attempts} listings, each stopped after ${slice} ms)`, what);
    }
  }
}

/** One listing, or undefined if it did not end within `timeoutMs` (it is then stopped, and the consumer behind it with it). */
async function listOnce(kv: KV, timeoutMs: number): Promise<Set<string> | undefined> {
  const keys = new Set<string>();
  let listing: Awaited<ReturnType<KV['keys']>> | undefined;
  let expired = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      expired = true;
      listing?.stop();
      resolve(undefined);
    }, timeoutMs);
  });
  const list = async () => {
    listing = await kv.keys();
    if (expired) listing.stop(); // the listing began after the time was up
    for await (const key of listing) keys.add(key);
    return keys;
  };
  const listed = list();
  listed.catch(() => undefined); // a listing stopped after its time ends with an error nobody waits for
  try {
    return await Promise.race([listed, late]);
  } finally {
    clearTimeout(timer);
  }
}
