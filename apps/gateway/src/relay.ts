import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ClientGone } from './client-gone.js';
import type { OutgoingHeaders, ProxyResponse } from './proxy.js';

/** Where a relayed upstream response is written as it arrives; Node's ServerResponse is one. */
export interface ResponseSink {
  writeHead(status: number, headers: OutgoingHeaders): unknown;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

/** How a relay ended before or at the upstream response head (see {@link RelayHandler}). */
export type RelayOutcome =
  /** Status and headers are written to the sink; the body follows there. */
  | { relayed: true; status: number }
  /** The caller sends this response itself (a status it did not want written through, or a retried call). */
  | { relayed: false; response: ProxyResponse };

export interface RelayHooks {
  /** Which final statuses go straight to the sink; the others come back as a ProxyResponse. */
  writesThrough: (status: number) => boolean;
  /** Filters the upstream headers for the sink (the proxy's downstream header rule). */
  responseHeaders: (upstream: Record<string, string | string[] | undefined>) => OutgoingHeaders;
  /**
   * Whether this response must not reach the caller: its body is then read and dropped, and
   * `retry` decides the outcome once it is complete (threats F14).
   */
  mustRetry: (status: number, headers: Record<string, string | string[] | undefined>) => boolean;
  /** Runs the retry; its errors reach `done` as they are (a store outage stays a 503). */
  retry: () => Promise<ProxyResponse>;
  /** What `done` gets for an upstream (transport) failure before anything reached the sink. */
  upstreamError: (err: unknown) => unknown;
  /** Called at most once: an error before anything reached the sink, or the outcome; never after abort(). */
  done: (err: unknown, outcome?: RelayOutcome) => void;
  /** The upstream failed after the head reached the sink; the sink is destroyed (the agent sees a cut response). */
  bodyFailed: (err: Error) => void;
}

const CLIENT_GONE = Object.assign(new Error('The agent closed the connection'), { name: 'AbortError' });
/** Of a rejected response's body, at most this much is read before the retry (as undici's dump()). */
const DROP_LIMIT = 128 * 1024;

/**
 * An undici dispatch handler that writes the upstream response into a {@link ResponseSink}
 * chunk by chunk, with the sink's backpressure pausing the upstream socket. This skips the
 * Readable that `request()` builds per response and the pipe between it and the sink, which
 * together cost about a fifth of a proxied call's CPU (measured, gateway README).
 *
 * `abort()` may come at any time (the agent went away): before the request reached a socket it
 * is remembered, after that the upstream request is aborted; nothing is reported in either case.
 */
export class RelayHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private stopped = false;
  /** The F14 retry's request signal, made only when a retry happens; aborted with this handler. */
  private retryGone: ClientGone | null = null;
  private dropped = 0;
  private retrying = false;
  /** 'head': no final response yet; 'sink': writing through; 'stream': into a Readable the caller got; 'drop': read for a retry. */
  private mode: 'head' | 'sink' | 'stream' | 'drop' = 'head';
  private stream: Readable | null = null;
  private finished = false;
  private ended = false;

  constructor(
    private readonly sink: ResponseSink,
    private readonly hooks: RelayHooks,
  ) {}

  /** True once {@link abort} was called. */
  get aborted(): boolean {
    return this.stopped;
  }

  abort(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.controller?.abort(CLIENT_GONE);
    this.retryGone?.abort();
  }

  /** A signal for the retried request: aborted when this handler is (also if it already was). */
  retrySignal(): ClientGone {
    this.retryGone ??= new ClientGone();
    if (this.stopped) this.retryGone.abort();
    return this.retryGone;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.stopped) controller.abort(CLIENT_GONE);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    if (status < 200 || this.stopped) return; // informational (e.g. 103): not forwarded, as request() does
    if (this.hooks.mustRetry(status, headers)) {
      this.mode = 'drop';
      return;
    }
    const filtered = this.hooks.responseHeaders(headers);
    if (!this.hooks.writesThrough(status)) {
      const stream = new Readable({
        read: () => controller.resume(),
        // The caller dropped the body before its end: the upstream request is not needed any more.
        destroy: (error, callback) => {
          if (!this.ended) controller.abort(error ?? CLIENT_GONE);
          callback(error);
        },
      });
      this.stream = stream;
      this.mode = 'stream';
      this.settle(null, { relayed: false, response: { status, headers: filtered, body: stream } });
      return;
    }
    try {
      this.sink.writeHead(status, filtered);
    } catch (err) {
      // A header Node refuses to send: nothing was written, so the caller can still answer.
      controller.abort(err as Error);
      return;
    }
    this.mode = 'sink';
    this.settle(null, { relayed: true, status });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.mode === 'sink') {
      if (!this.sink.write(chunk)) {
        controller.pause();
        this.sink.once('drain', () => controller.resume());
      }
    } else if (this.mode === 'stream') {
      if (!this.stream!.push(chunk)) controller.pause();
    } else if (this.mode === 'drop') {
      this.dropped += chunk.length;
      if (this.dropped > DROP_LIMIT) controller.abort(new Error('rejected response body too large to drain')); // → onResponseError → retry
    }
  }

  onResponseEnd(): void {
    this.ended = true;
    if (this.mode === 'sink') this.sink.end();
    else if (this.mode === 'stream') this.stream!.push(null);
    else if (this.mode === 'drop') this.startRetry();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.mode === 'sink') {
      if (!this.stopped) this.hooks.bodyFailed(err);
      this.sink.destroy();
    } else if (this.mode === 'stream') {
      this.stream!.destroy(err);
    } else if (this.mode === 'drop') {
      // The rejected response's body failed or was cut at DROP_LIMIT: it is not needed, retry anyway.
      this.startRetry();
    } else if (!this.stopped) {
      this.settle(this.hooks.upstreamError(err));
    }
  }

  private startRetry(): void {
    if (this.retrying || this.stopped) return;
    this.retrying = true;
    this.hooks.retry().then(
      (response) => {
        if (this.stopped) response.body.destroy();
        else this.settle(null, { relayed: false, response });
      },
      (err: unknown) => this.settle(err),
    );
  }

  private settle(err: unknown, outcome?: RelayOutcome): void {
    if (this.finished || this.stopped) return;
    this.finished = true;
    this.hooks.done(err, outcome);
  }
}
