// The front thread's end of the persistence actor: starts the worker, batches commands into one
// msgpackr-encoded postMessage per event-loop turn, answers requests with the actor's replies, and
// hands every other event to one handler.

import { Worker } from 'node:worker_threads';
import { decodeBatch, encodeBatch, workerStart, type ActorInit, type AdminOp, type FromActor, type HooksOp, type HooksReplyEvt, type ReplyEvt, type ToActor } from '../workers/contract.ts';
import type { Config } from './config.ts';

export class ActorLink {
  private readonly worker: Worker;
  private outbox: ToActor[] = [];
  private flushScheduled = false;
  private exited = false;
  private onEvents: (evts: FromActor[]) => void = () => {};
  /** Requests waiting for the actor's reply, by reqId. */
  private readonly requests = new Map<number, (r: ReplyEvt) => void>();
  /** Webhook admin calls waiting for the actor's answer, by reqId (the same numbering). */
  private readonly hookRequests = new Map<number, (r: HooksReplyEvt) => void>();
  private nextReq = 1;
  /** Every block in the store, as the actor reported it at start-up. */
  initialBlocks: [string, string][] = [];
  /** The directory version read just before those blocks. */
  initialDirVersion = 0;

  private constructor(worker: Worker) {
    this.worker = worker;
  }

  /** Start the actor and wait until its store is open. Rejects with the actor's start-up error. */
  static start(config: Config): Promise<ActorLink> {
    const start = workerStart('persistence/actor');
    const init: ActorInit = { __entry: start.entry, config };
    const worker = new Worker(start.file, { workerData: init, name: 'persistence-actor' });
    const link = new ActorLink(worker);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      const onExit = (code: number): void => reject(new Error(`persistence actor exited with code ${code} during start-up`));
      worker.once('error', onError);
      worker.once('exit', onExit);
      worker.on('message', (buf: Uint8Array) => {
        const evts = decodeBatch<FromActor>(buf);
        const first = evts[0];
        if (first !== undefined && first.t === 'ready') {
          link.initialBlocks = first.blocks;
          link.initialDirVersion = first.dirVersion;
          worker.off('error', onError);
          worker.off('exit', onExit);
          worker.on('exit', () => { link.exited = true; });
          resolve(link);
          evts.shift();
        }
        if (evts.length > 0) link.dispatch(evts);
      });
    });
  }

  /** The one handler for everything the actor says (but replies to requests). */
  listen(handler: (evts: FromActor[]) => void): void {
    this.onEvents = handler;
  }

  private dispatch(evts: FromActor[]): void {
    let rest = evts;
    if (this.requests.size > 0 || this.hookRequests.size > 0) {
      rest = [];
      for (const e of evts) {
        if (e.t === 'reply') {
          const cb = this.requests.get(e.reqId);
          this.requests.delete(e.reqId);
          cb?.(e);
        } else if (e.t === 'hooksReply') {
          const cb = this.hookRequests.get(e.reqId);
          this.hookRequests.delete(e.reqId);
          cb?.(e);
        } else rest.push(e);
      }
    }
    if (rest.length > 0) this.onEvents(rest);
  }

  /** A host-app operation; resolves with the actor's reply. */
  request(body: AdminOp): Promise<ReplyEvt> {
    return this.awaitReply((reqId) => this.send({ t: 'req', reqId, body }));
  }

  /** A webhook outbox admin call; resolves with the actor's answer. */
  hooks(body: HooksOp): Promise<HooksReplyEvt> {
    const reqId = this.nextReq++;
    return new Promise((resolve) => {
      this.hookRequests.set(reqId, resolve);
      this.send({ t: 'hooks', reqId, body });
    });
  }

  /** Send a command carrying a fresh reqId; resolves with the actor's reply to it. */
  awaitReply(send: (reqId: number) => void): Promise<ReplyEvt> {
    const reqId = this.nextReq++;
    return new Promise((resolve) => {
      this.requests.set(reqId, resolve);
      send(reqId);
    });
  }

  /** Errors of the worker after start-up (a crash of the actor is fatal to the engine). */
  onFailure(handler: (err: Error) => void): void {
    this.worker.on('error', handler);
    this.worker.on('exit', (code) => { if (code !== 0) handler(new Error(`persistence actor exited with code ${code}`)); });
  }

  send(cmd: ToActor): void {
    this.outbox.push(cmd);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // One postMessage per event-loop turn: every frame uWS handed us in this poll phase rides it.
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.outbox.length === 0 || this.exited) return;
    const buf = encodeBatch(this.outbox);
    this.outbox = [];
    this.worker.postMessage(buf, [buf.buffer as ArrayBuffer]);
  };

  /**
   * Ask the actor to commit what it holds and stop; resolves once it has exited. If the store is
   * down and the actor cannot finish within `graceMs`, it is terminated: what it still held was
   * never acked, so nothing acked is lost.
   */
  async shutdown(graceMs = 15_000): Promise<void> {
    if (this.exited) return;
    this.send({ t: 'shutdown' });
    this.flush();
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    const timer = setTimeout(() => void this.worker.terminate(), graceMs);
    await exited;
    clearTimeout(timer);
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}
