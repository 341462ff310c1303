/**
 * Runs response work outside whichever uWS callback is on the stack. This uWS build corks one
 * socket at a time: writing a user's response from inside the tunnel WebSocket's message
 * handler would not cork, and every header piece would become its own syscall (DESIGN.md
 * measured ~24 sendto per request). Work queued here runs in one batch from setImmediate,
 * where `res.cork()` works, in the order it was queued.
 */
let queue: (() => void)[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const batch = queue;
  queue = [];
  for (const work of batch) work();
}

export function outside(work: () => void): void {
  queue.push(work);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
