/**
 * The client side of a client- or bidi-streaming call: an async iterable
 * that request messages are pushed into as the conversation goes (connect
 * reads it while the call runs). `end()` closes the request stream.
 */
export function requestChannel<T>(): AsyncIterable<T> & { push(v: T): void; end(): void } {
  const queue: T[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    push(v) {
      queue.push(v);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    },
  };
}
