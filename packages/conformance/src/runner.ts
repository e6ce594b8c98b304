/**
 * runConformance(options) → Report: sets up the agent host (and, for the full profile, the consent
 * driver or the gateway upstream), discovers the target, runs the selected scenarios one by one
 * with a per-scenario deadline, and tears everything down. Never throws for a failing target.
 */
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import { AgentHost } from './agents.js';
import { Failure, Skip } from './assert.js';
import { RunContext, PATHS } from './context.js';
import { GatewayHttpDriver, NativeChromiumDriver, NativeHttpDriver } from './flow.js';
import { BudgetExceeded, DestinationRefused, HttpClient, isLoopbackHost } from './http.js';
import { SCENARIOS } from './registry.js';
import type { ConformanceOptions, Report, ResultStatus, Scenario, ScenarioResult } from './types.js';
import { MockUpstream, UPSTREAM_PROVIDER_ID, UPSTREAM_SECRET_ENV } from './upstream.js';
import { SUITE_VERSION } from './version.js';

export class OptionsError extends Error {
  override readonly name = 'OptionsError';
}

export function checkOptions(options: ConformanceOptions): void {
  let url: URL;
  try {
    url = new URL(options.target);
  } catch {
    throw new OptionsError(`--target ${options.target} is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OptionsError('--target must be http(s)');
  if (url.pathname !== '/' || url.search || url.hash) throw new OptionsError('--target must be an origin (no path, query or fragment)');
  if (!isLoopbackHost(url.hostname) && !options.allowRemote) {
    throw new OptionsError(`refusing non-loopback target ${url.origin}; pass --allow-remote to test a remote implementation`);
  }
  if (options.mode !== 'gateway' && options.mode !== 'native') throw new OptionsError('--mode must be gateway or native');
  const host = options.agentHost ?? '127.0.0.1';
  if (!isLoopbackHost(host) && !options.allowRemote) throw new OptionsError(`--agent-host ${host} is not loopback (needs --allow-remote)`);
}

/** Scenarios selected by mode and --only (scenario ids or checklist ids). */
export function selectScenarios(options: Pick<ConformanceOptions, 'mode' | 'only'>): Scenario[] {
  const only = options.only?.length ? new Set(options.only) : null;
  return SCENARIOS.filter((s) => s.modes.includes(options.mode) && (!only || only.has(s.id) || s.checklist.some((c) => only.has(c))));
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function discover(ctx: RunContext): Promise<void> {
  const path = ctx.mode === 'gateway' ? PATHS.gatewayDiscovery : PATHS.nativeDiscovery;
  try {
    const res = await ctx.http.request(ctx.url(path));
    const doc = res.json as Record<string, unknown> | undefined;
    if (res.status !== 200 || !doc || typeof doc !== 'object') {
      ctx.discoveryProblem = `GET ${path} answered ${res.status}`;
      return;
    }
    ctx.discovery = doc;
    if (ctx.mode === 'native') {
      const auth = doc['auth'] as { scopes_supported?: unknown } | undefined;
      ctx.providerId = ctx.options.providerId ?? (typeof doc['app_id'] === 'string' ? doc['app_id'] : '');
      ctx.offeredScopes = Array.isArray(auth?.scopes_supported) ? (auth.scopes_supported as string[]) : [];
      if (typeof doc['api_base'] === 'string') {
        try {
          const api = new URL(doc['api_base']);
          ctx.http.assertAllowed(api);
          ctx.apiBase = api.toString().replace(/\/+$/, '');
        } catch (e) {
          ctx.discoveryProblem = `api_base unusable: ${String(e)}`;
        }
      }
    } else {
      const providers = Array.isArray(doc['supported_providers']) ? (doc['supported_providers'] as Record<string, unknown>[]) : [];
      const wanted =
        ctx.options.providerId ??
        (ctx.profile === 'full' && providers.some((p) => p['provider_id'] === UPSTREAM_PROVIDER_ID) ? UPSTREAM_PROVIDER_ID : undefined);
      const p = wanted ? providers.find((x) => x['provider_id'] === wanted) : providers[0];
      if (!p) {
        ctx.discoveryProblem = wanted ? `provider ${wanted} is not in the catalog` : 'the catalog lists no provider';
        return;
      }
      ctx.providerId = String(p['provider_id']);
      ctx.offeredScopes = Array.isArray(p['available_scopes']) ? (p['available_scopes'] as string[]) : [];
    }
    if (!ctx.providerId) ctx.discoveryProblem = 'no provider/app_id';
  } catch (e) {
    ctx.discoveryProblem = `GET ${path} failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}

export async function runConformance(options: ConformanceOptions): Promise<Report> {
  checkOptions(options);
  const started = Date.now();
  const profile = options.profile ?? 'basic';
  const log = options.log ?? (() => undefined);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const targetOrigin = new URL(options.target).origin;
  const http = new HttpClient({
    timeoutMs,
    maxRequests: options.maxRequests ?? 3000,
    allowedOrigins: options.allowRemote ? [targetOrigin] : [],
  });
  const runId = options.runId ?? randomBytes(4).toString('hex');
  const agents = new AgentHost({ host: options.agentHost ?? '127.0.0.1', port: options.agentPort ?? 0, runId });
  await agents.start();
  const ctx = new RunContext({ ...options, target: targetOrigin }, http, agents);
  log(`agent documents served on ${agents.origin} — the target must allow plain-http identity documents from ${agents.hostPort}`);

  const results: ScenarioResult[] = [];
  let ownedUpstream: MockUpstream | null = null;
  try {
    if (profile === 'full') {
      if (options.mode === 'gateway') {
        const given = options.gatewayUpstream?.instance;
        let upstream: MockUpstream;
        if (given) {
          upstream = given;
        } else {
          const secret = options.gatewayUpstream?.clientSecret;
          upstream = new MockUpstream(secret ? { clientSecret: secret } : {});
          await upstream.start(options.gatewayUpstream?.asPort ?? 0, options.gatewayUpstream?.apiPort ?? 0);
          ownedUpstream = upstream;
        }
        ctx.upstream = upstream;
        ctx.secrets.add(upstream.clientSecret); // the upstream client secret must never reach an agent (C-214)
        ctx.flow = new GatewayHttpDriver(http, targetOrigin, upstream);
        log(
          `gateway upstream: mock AS ${upstream.asOrigin}, recording API ${upstream.apiOrigin}; the gateway's config needs ` +
            `(with ${UPSTREAM_SECRET_ENV} set to the suite's upstream client secret):\n${YAML.stringify(upstream.gatewayConfigFragment(agents.hostPort))}`,
        );
      } else if (options.nativeLogin) {
        ctx.flow =
          options.consentDriver === 'chromium'
            ? new NativeChromiumDriver(http, targetOrigin, options.nativeLogin, options.chromiumPath ?? '/usr/bin/chromium', Math.max(timeoutMs, 15_000))
            : new NativeHttpDriver(http, targetOrigin, options.nativeLogin);
      }
    }
    await discover(ctx);
    if (ctx.discoveryProblem) log(`discovery: ${ctx.discoveryProblem}`);

    const expected = new Map<string, string>();
    for (const x of options.expectedFailures ?? []) expected.set(x.id, x.reason ?? '');
    const scenarioDeadline = Math.max(60_000, timeoutMs * 6);

    for (const scenario of selectScenarios(options)) {
      ctx.scenarioId = scenario.id;
      ctx.notes = [];
      const t0 = Date.now();
      let status: ResultStatus = 'PASS';
      let message: string | null = null;
      if (profile === 'basic' && scenario.profile === 'full') {
        status = 'SKIP';
        message = 'needs --profile full';
      } else {
        try {
          await withDeadline(scenario.run(ctx), scenarioDeadline, scenario.id);
        } catch (e) {
          if (e instanceof Skip) {
            status = 'SKIP';
            message = e.message;
          } else if (e instanceof BudgetExceeded || e instanceof DestinationRefused) {
            status = 'SKIP';
            message = e.message;
          } else {
            status = 'FAIL';
            message = e instanceof Failure ? e.message : `error: ${e instanceof Error ? e.message : String(e)}`;
          }
        }
      }
      const xf = [scenario.id, ...scenario.checklist].find((id) => expected.has(id));
      if (xf !== undefined && status === 'FAIL') {
        status = 'XFAIL';
        message = `expected failure (${xf}${expected.get(xf) ? `: ${expected.get(xf)}` : ''}): ${message}`;
      } else if (xf !== undefined && status === 'PASS') {
        status = 'XPASS';
        message = `listed as an expected failure (${xf}) but passed — remove it from the expected-failures file`;
      }
      const result: ScenarioResult = {
        id: scenario.id,
        title: scenario.title,
        section: scenario.section,
        checklist: [...scenario.checklist],
        threats: [...(scenario.threats ?? [])],
        status,
        message,
        notes: ctx.notes,
        durationMs: Date.now() - t0,
      };
      results.push(result);
      options.onResult?.(result);
    }
  } finally {
    await ctx.flow?.close().catch(() => undefined);
    await ownedUpstream?.close().catch(() => undefined);
    await agents.close();
  }

  const summary = { PASS: 0, FAIL: 0, SKIP: 0, XFAIL: 0, XPASS: 0, total: results.length, unexpectedFailures: 0 };
  for (const r of results) summary[r.status]++;
  summary.unexpectedFailures = summary.FAIL;
  const exercised = new Set<string>();
  for (const r of results) if (r.status !== 'SKIP') for (const c of r.checklist) exercised.add(c);
  return {
    suite: '@athkit/conformance',
    suiteVersion: SUITE_VERSION,
    protocolVersion: '0.1',
    target: targetOrigin,
    mode: options.mode,
    profile,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    requestCount: http.requestCount,
    summary,
    ok: summary.FAIL === 0,
    results,
    checklistExercised: [...exercised].sort(),
  };
}
