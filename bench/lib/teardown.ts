// What a run must undo on the way out (spawned servers, a scratch database, Redis keys), undone
// even when the bench is interrupted: Ctrl-C and SIGTERM (e.g. from `timeout`) run every step,
// newest first, then exit; a second signal exits at once.

interface Step { label: string; run: () => Promise<void> }

export class Teardown {
  private readonly steps: Step[] = [];
  private trapped = false;

  /** Registers an undo step; returns it wrapped so that it runs once, whoever calls it first. */
  add(label: string, undo: () => Promise<unknown>): () => Promise<void> {
    let done: Promise<void> | undefined;
    const step: Step = {
      label,
      run: () => {
        if (!done) {
          const i = this.steps.indexOf(step);
          if (i >= 0) this.steps.splice(i, 1);
          done = undo().then(() => undefined, (e: Error) => { process.stderr.write(`[bench] ${label}: ${e.message}\n`); });
        }
        return done;
      },
    };
    this.steps.push(step);
    return step.run;
  }

  /** Runs every step still pending, newest first (nodes stop before their database is dropped). */
  async runAll(): Promise<void> {
    while (this.steps.length) await this.steps[this.steps.length - 1].run();
  }

  /** On SIGINT/SIGTERM: run every pending step, then exit 130/143. A second signal exits at once. */
  trapSignals(): void {
    if (this.trapped) return;
    this.trapped = true;
    let signalled = false;
    const on = (sig: NodeJS.Signals): void => {
      const code = sig === 'SIGINT' ? 130 : 143;
      if (signalled) { process.stderr.write(`[bench] second ${sig}: exiting without cleaning up\n`); process.exit(code); }
      signalled = true;
      process.stderr.write(`[bench] ${sig}: ${this.steps.length ? 'cleaning up (' + this.steps.map((s) => s.label).reverse().join(', ') + ')' : 'nothing to clean up'}\n`);
      void this.runAll().then(() => process.exit(code));
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  }
}
