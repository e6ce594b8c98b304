import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { pino, type Logger, type LoggerOptions } from 'pino';

/** Prometheus metrics of one gateway instance (its own registry, so several instances can share a process). */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly duration: Histogram<'route'>;
  readonly handshakes: Counter<'step' | 'outcome'>;
  readonly upstream: Counter<'provider' | 'status'>;
  readonly inflight: Gauge;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'ath_gateway_http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'ath_gateway_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
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
    });
    this.inflight = new Gauge({ name: 'ath_gateway_proxy_inflight', help: 'Proxied calls in flight', registers });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'ath_gateway_' });
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
      req: (req: { method?: string; url?: string; ip?: string; id?: string }) => ({ method: req.method, url: safeUrl(req.url), ip: req.ip }),
    },
  };
  return destination ? pino(options, destination as Parameters<typeof pino>[1]) : pino(options);
}
