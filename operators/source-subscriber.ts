import { type Observable, type Observer, Subscription } from 'rxjs';

/**
 * Subscribes an operator's handlers to its source so that unsubscribing downstream
 * stops the source at once, even in the middle of a synchronous emission loop (an
 * endless generator piped into `take(2)` must not run forever).
 *
 * RxJS's own operators get this from `OperatorSubscriber`, which 7.x does not export.
 * `Observable.subscribe` uses any `Subscription` that has observer methods as the
 * subscriber itself instead of wrapping it, so the source sees `closed` flip the moment
 * `downstream` (to which it is added) is unsubscribed.
 */
class SourceSubscriber<T> extends Subscription implements Observer<T> {
  private stopped = false;

  constructor(private readonly handlers: Observer<T>) {
    super();
  }

  next(value: T): void {
    if (!this.stopped && !this.closed) this.handlers.next(value);
  }

  error(err: unknown): void {
    if (this.stopped || this.closed) return;
    this.stopped = true;
    try {
      this.handlers.error(err);
    } finally {
      this.unsubscribe();
    }
  }

  complete(): void {
    if (this.stopped || this.closed) return;
    this.stopped = true;
    try {
      this.handlers.complete();
    } finally {
      this.unsubscribe();
    }
  }
}

/** Subscribes `handlers` to `source`, tied to the `downstream` subscription's lifetime. */
export function subscribeToSource<T>(source: Observable<T>, downstream: Subscription, handlers: Observer<T>): Subscription {
  const subscriber = new SourceSubscriber(handlers);
  downstream.add(subscriber);
  source.subscribe(subscriber);
  return subscriber;
}
