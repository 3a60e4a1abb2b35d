/**
 * A first-come, first-served async lock: `run(fn)` starts `fn` at once when the lock is free,
 * otherwise when every earlier caller has finished. No promise chain grows per call (a signature
 * loop of 10,000 exchanges keeps nothing alive), and a failing `fn` releases the lock like any other.
 */
export class FifoLock {
  private busy = false;
  private readonly waiting: (() => void)[] = [];

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy) await new Promise<void>((resume) => this.waiting.push(resume));
    else this.busy = true;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy = false;
    }
  }
}
