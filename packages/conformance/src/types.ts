import type { RunContext } from './context.js';
import type { MockUpstream } from './upstream.js';

export type Mode = 'gateway' | 'native';
export type Profile = 'basic' | 'full';
export type ResultStatus = 'PASS' | 'FAIL' | 'SKIP' | 'XFAIL' | 'XPASS';

/** One conformance scenario: what it checks (checklist and threat ids) and how. */
export interface Scenario {
  /** Stable id, `<section>.<name>`, e.g. `B.alg-none`. */
  readonly id: string;
  readonly title: string;
  /** Checklist section letter (A…M). */
  readonly section: string;
  /** Checklist ids this scenario checks (C-xxx). */
  readonly checklist: readonly string[];
  /** threats.md ids (e.g. A2, B4), where relevant. */
  readonly threats?: readonly string[];
  /** Spec source(s) as the checklist abbreviates them (S/…, SCH, AMB-xx). */
  readonly spec: string;
  /** basic: only the target URL is needed; full: needs a controlled OAuth side (login hook / mock AS). */
  readonly profile: Profile;
  readonly modes: readonly Mode[];
  run(ctx: RunContext): Promise<void>;
}

export interface ScenarioResult {
  id: string;
  title: string;
  section: string;
  checklist: string[];
  threats: string[];
  status: ResultStatus;
  /** Failure or skip reason; for XFAIL the failure, for XPASS the expectation that did not hold. */
  message: string | null;
  /** Informational observations. */
  notes: string[];
  durationMs: number;
}

export interface ExpectedFailure {
  /** A scenario id or a checklist id (C-xxx); a checklist id matches every scenario citing it. */
  id: string;
  reason?: string;
}

/** Native API scope map (--api-map): operations under `api_base`, each needing one scope. */
export interface ApiMap {
  operations: { method: string; path: string; scope: string; body?: unknown }[];
  /** An operation the target does not map to any scope (deny by default, C-158). Default: DELETE /ath-conformance-unmapped. */
  unmapped?: { method: string; path: string };
}

export interface NativeLogin {
  /** A login page with a plain form (`username`, `password` fields), on the target or loopback. */
  url: string;
  username: string;
  password: string;
}

export interface ConformanceOptions {
  /** Base URL (origin) of the implementation under test. */
  target: string;
  mode: Mode;
  profile?: Profile;
  /** Scenario ids or checklist ids to run (others are left out). */
  only?: readonly string[];
  /** Where the suite serves its agents' identity documents. Default 127.0.0.1. */
  agentHost?: string;
  /** Port for the agent documents; 0 = any free port (default). */
  agentPort?: number;
  /** Per-request timeout (default 10000 ms). */
  timeoutMs?: number;
  /** Upper bound on requests for the whole run (default 3000). */
  maxRequests?: number;
  /** Allow a non-loopback target. */
  allowRemote?: boolean;
  expectedFailures?: readonly ExpectedFailure[];
  /** The provider to exercise (gateway; default: the first in the catalog). Native: app_id. */
  providerId?: string;
  apiMap?: ApiMap;
  nativeLogin?: NativeLogin;
  /** How the consent page is driven in native full mode. Default 'http' (a cookie-jar client). */
  consentDriver?: 'http' | 'chromium';
  /** Chromium for consentDriver 'chromium'. Default /usr/bin/chromium. */
  chromiumPath?: string;
  /**
   * Gateway full profile: the suite's mock authorization server and upstream API — their ports
   * (0 = any), the upstream client secret the gateway is configured with (default: random), or an
   * already started `MockUpstream` the caller owns (then ports and secret are its own, and the
   * runner does not close it).
   */
  gatewayUpstream?: { asPort?: number; apiPort?: number; clientSecret?: string; instance?: MockUpstream };
  /** Strings that must never appear in any response (e.g. the provider client secrets the target is configured with). */
  secretCanaries?: readonly string[];
  /** Called with each result as it completes. */
  onResult?: (result: ScenarioResult) => void;
  /** Progress/diagnostic lines (e.g. the provider entry a gateway must be configured with). */
  log?: (line: string) => void;
  /** Distinguishes agents of this run (default: random). */
  runId?: string;
}

export interface Report {
  suite: '@athkit/conformance';
  suiteVersion: string;
  protocolVersion: '0.1';
  target: string;
  mode: Mode;
  profile: Profile;
  startedAt: string;
  durationMs: number;
  requestCount: number;
  summary: Record<ResultStatus, number> & { total: number; unexpectedFailures: number };
  /** true when nothing unexpected failed. */
  ok: boolean;
  results: ScenarioResult[];
  /** Checklist ids with at least one PASS/FAIL result (i.e. actually exercised). */
  checklistExercised: string[];
}
