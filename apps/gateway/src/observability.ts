import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { pino, type Logger, type LoggerOptions } from 'pino';
import { loggableError } from '@athkit/core';

/**
 * Counts by a fixed tuple of label values, kept in nested maps of plain numbers and added to a
 * prom-client Counter when it is collected: counting a request costs map lookups, no label-hash
 * string per call.
 */
class Tally {
  private readonly counts = new Map<string, Map<string, Map<string, number>>>();

  add(a: string, b: string, c: string): void {
    let byB = this.counts.get(a);
    if (!byB) this.counts.set(a, (byB = new Map<string, Map<string, number>>()));
    let byC = byB.get(b);
    if (!byC) byB.set(b, (byC = new Map<string, number>()));
    byC.set(c, (byC.get(c) ?? 0) + 1);
  }

  /** Hands every pending count to `sink` and starts again from zero. */
  drain(sink: (a: string, b: string, c: string, n: number) => void): void {
    for (const [a, byB] of this.counts) {
      for (const [b, byC] of byB) {
        for (const [c, n] of byC) {
          if (n > 0) sink(a, b, c, n);
          byC.set(c, 0);
        }
      }
    }
  }
}

/**
 * A Prometheus histogram with one label (`route`) kept in plain arrays: observing a duration is a
 * bucket search and three additions, where prom-client's Histogram builds and hashes a label set on
 * every call. Registered as a metric of its own (prom-client's `get`/`reset` contract), so the
 * exposition is the same as a prom-client histogram's.
 */
class RouteHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly byRoute = new Map<string, { buckets: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  observe(route: string, seconds: number): void {
    let series = this.byRoute.get(route);
    if (!series) this.byRoute.set(route, (series = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 }));
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    if (i < bounds.length) series.buckets[i]!++;
    series.sum += seconds;
    series.count++;
  }

  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [route, series] of this.byRoute) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += series.buckets[i]!;
        values.push({ labels: { le, route }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', route }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { route }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { route }, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }

  reset(): void {
    this.byRoute.clear();
  }
}

/** Prometheus metrics of one gateway instance (its own registry, so several instances can share a process). */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requestTally = new Tally();
  private readonly upstreamTally = new Tally();
  private readonly statusText: string[] = [];
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly duration: RouteHistogram;
  readonly handshakes: Counter<'step' | 'outcome'>;
  readonly upstream: Counter<'provider' | 'status'>;
  readonly inflight: Gauge;
  /** Proxied calls answered on the fast path (no fastify routing; see server.ts). */
  readonly fastPath: Counter;
  private fastPathPending = 0;
  /** Where the in-flight gauge reads its value when collected (instead of a set per call). */
  readonly inflightFrom: (source: () => number) => void;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const requestTally = this.requestTally;
    const upstreamTally = this.upstreamTally;
    this.requests = new Counter({
      name: 'ath_gateway_http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
      collect() {
        requestTally.drain((route, method, status, n) => this.inc({ route, method, status }, n));
      },
    });
    this.duration = new RouteHistogram('ath_gateway_http_request_duration_seconds', 'HTTP request latency by route', [
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]);
    this.registry.registerMetric(this.duration as unknown as Parameters<Registry['registerMetric']>[0]);
    this.handshakes = new Counter({
      name: 'ath_gateway_handshake_outcomes_total',
      help: 'Handshake steps by outcome (ok or the ATH error code)',
      labelNames: ['step', 'outcome'],
      registers,
    });
    this.upstream = new Counter({
      name: 'ath_gateway_proxy_upstream_responses_total',
      help: 'Proxied calls by provider and upstream status (or the ATH error code when no upstream answer)',
      labelNames: ['provider', 'status'],
      registers,
      collect() {
        upstreamTally.drain((provider, status, _, n) => this.inc({ provider, status }, n));
      },
    });
    const pendingFast = () => {
      const n = this.fastPathPending;
      this.fastPathPending = 0;
      return n;
    };
    this.fastPath = new Counter({
      name: 'ath_gateway_proxy_fast_path_total',
      help: 'Proxied calls whose token, scope and upstream token were decided from the in-memory caches alone',
      registers,
      collect() {
        this.inc(pendingFast());
      },
    });
    let inflightSource: (() => number) | null = null;
    this.inflightFrom = (source) => {
      inflightSource = source;
    };
    this.inflight = new Gauge({
      name: 'ath_gateway_proxy_inflight',
      help: 'Proxied calls in flight',
      registers,
      collect() {
        if (inflightSource) this.set(inflightSource());
      },
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'ath_gateway_' });
  }

  /** One answered HTTP request (per-request hot path: counter tallied, histogram observed). */
  countRequest(route: string, method: string, status: number, seconds: number): void {
    this.requestTally.add(route, method, this.status(status));
    this.duration.observe(route, seconds);
  }

  /** One proxied call taken by the fast path. */
  countFastPath(): void {
    this.fastPathPending++;
  }

  /** One proxied call's outcome: the upstream status, or the ATH error code when there was no upstream answer. */
  countUpstream(provider: string, status: number | string): void {
    this.upstreamTally.add(provider, typeof status === 'number' ? this.status(status) : status, '');
  }

  private status(code: number): string {
    return (this.statusText[code] ??= String(code));
  }
}

/**
 * Everything a log line must never contain (threats F8, C-221): ATH and upstream tokens, client
 * secrets, authorization codes and verifiers, attestations, cookies, the admin key.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-ath-agent-attestation"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.access_token',
  '*.refresh_token',
  '*.client_secret',
  '*.query.code',
  '*.code_verifier',
  '*.agent_attestation',
  '*.token',
  '*.adminKey',
  '*.cookieKey',
  '*.vaultKey',
];

/** Request URLs are logged without their query (callback `code`/`state`, anything an agent put there). */
export function safeUrl(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?[redacted]`;
}

export function createLogger(level: LoggerOptions['level'], destination?: NodeJS.WritableStream): Logger {
  const options: LoggerOptions = {
    level: level ?? 'info',
    base: { service: 'ath-gateway' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      // Every `err` the gateway logs: type, code, message and causes, never a stack.
      err: (err: unknown) => loggableError(err),
      req: (req: { method?: string; url?: string; ip?: string; id?: string }) => ({ method: req.method, url: safeUrl(req.url), ip: req.ip }),
    },
  };
  return destination ? pino(options, destination as Parameters<typeof pino>[1]) : pino(options);
}
