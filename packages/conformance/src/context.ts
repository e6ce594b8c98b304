/**
 * What every scenario gets: the target, an HTTP client bounded by the run's budget, the agent
 * host, discovery results, shared registrations, and helpers that encode the checklist's
 * fixtures (REG1, att(aud), FLOW) and expectations ("→ 403 X").
 */
import { ERROR_STATUS, validateATHError } from '@athkit/schemas';
import type { Agent, AgentHost } from './agents.js';
import { brief, check, fail, skip } from './assert.js';
import type { HttpClient, HttpResponse, RequestOptions } from './http.js';
import type { ApiMap, ConformanceOptions, Mode, Profile } from './types.js';
import type { FlowDriver } from './flow.js';
import type { MockUpstream } from './upstream.js';

export const PATHS = {
  register: '/ath/agents/register',
  agent: (clientId: string) => `/ath/agents/${encodeURIComponent(clientId)}`,
  authorize: '/ath/authorize',
  token: '/ath/token',
  revoke: '/ath/revoke',
  callback: '/ath/callback',
  gatewayDiscovery: '/.well-known/ath.json',
  nativeDiscovery: '/.well-known/ath-app.json',
} as const;

/** The redirect URI REG1 registers; never contacted (the suite does not follow redirects to it). */
export const AGENT_REDIRECT_URI = 'https://agent.ath-conformance.invalid/cb';
export const UNKNOWN_PROVIDER = 'ath-conformance-no-such-provider';
export const UNKNOWN_SCOPE = 'ath-conformance:not-offered';

export interface Registration {
  agent: Agent;
  clientId: string;
  clientSecret: string;
  status: string;
  approved: string[];
  denied: string[];
  redirectUri: string | null;
  body: Record<string, unknown>;
}

export interface ErrorRecord {
  scenario: string;
  request: string;
  status: number;
  contentType: string | undefined;
  body: string;
  /** The ATHError code, when the body had one. */
  code: string | null;
  /** Problems with the error body itself (shape C-200, status table C-201, leaks C-203). */
  problems: string[];
}

const TABLE = ERROR_STATUS as Readonly<Record<string, number>>;

/** C-203: what an error body must never contain. */
const LEAK_PATTERNS: [RegExp, string][] = [
  [/\n\s+at .+\(.+:\d+:\d+\)/, 'stack trace'],
  [/\bat (?:async )?[\w.<>]+ \((?:file:|node:|\/)/, 'stack trace'],
  [/\b(?:SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b/, 'SQL text'],
  [/\bSQLITE_\w+|\bECONNREFUSED\b|\bENOTFOUND\b/, 'internal error identifier'],
  [/\b(?:10|192\.168|172\.(?:1[6-9]|2\d|3[01]))\.\d{1,3}\.\d{1,3}\b/, 'internal IP address'],
  [/ath_secret_|"client_secret"\s*:/, 'client secret'],
];

export class RunContext {
  readonly base: string;
  readonly mode: Mode;
  readonly profile: Profile;
  /** Set by the runner before each scenario. */
  scenarioId = '';
  notes: string[] = [];
  readonly errors: ErrorRecord[] = [];
  /** Discovery document (ath.json or ath-app.json), once fetched. */
  discovery: Record<string, unknown> | null = null;
  discoveryProblem: string | null = null;
  providerId = '';
  /** Scopes the provider / service offers. */
  offeredScopes: string[] = [];
  /** Native: api_base from ath-app.json. */
  apiBase: string | null = null;
  flow: FlowDriver | null = null;
  /** Gateway full profile: the suite's mock AS and upstream API. */
  upstream: MockUpstream | null = null;
  /** Tokens seen in any response, for leak scans (never printed). */
  readonly secrets = new Set<string>();
  private reg1: Promise<Registration> | null = null;
  private reg2: Promise<Registration> | null = null;

  constructor(
    readonly options: ConformanceOptions,
    readonly http: HttpClient,
    readonly agents: AgentHost,
  ) {
    this.base = options.target.replace(/\/+$/, '');
    this.mode = options.mode;
    this.profile = options.profile ?? 'basic';
    for (const s of options.secretCanaries ?? []) if (s) this.secrets.add(s);
  }

  get apiMap(): ApiMap | null {
    return this.options.apiMap ?? null;
  }

  url(path: string): string {
    return `${this.base}${path}`;
  }

  note(message: string): void {
    this.notes.push(message);
  }

  /** A request to the target (path relative to the base, or an absolute URL). */
  async request(pathOrUrl: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : this.url(pathOrUrl);
    const res = await this.http.request(url, opts);
    if (res.status >= 400) this.recordError(res);
    return res;
  }

  post(path: string, body: RequestOptions['body'], headers: Record<string, string> = {}): Promise<HttpResponse> {
    return this.request(path, { method: 'POST', body, headers });
  }

  get(path: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
    return this.request(path, { method: 'GET', headers });
  }

  private recordError(res: HttpResponse): void {
    const problems: string[] = [];
    const ct = res.header('content-type');
    const isApiPassThrough =
      ((this.apiBase !== null && res.url.startsWith(this.apiBase)) ||
        // gateway: the suite's recording upstream API marks its answers; the gateway passes them through (C-163)
        (this.upstream !== null && res.header('x-upstream') === 'ath-conformance')) &&
      !this.isAthError(res.json);
    if (isApiPassThrough) return; // upstream/native responses that are not ATH errors are not ours to judge (C-200)
    if (!ct || !/^application\/json\b/i.test(ct)) problems.push(`content-type is ${ct ?? 'missing'}, not application/json`);
    const shape = validateATHError(res.json);
    if (!shape.valid) {
      problems.push(
        `body is not an ATHError: ${shape.violations.map((v) => `${v.pointer || '(root)'} ${v.message}`).join('; ')} — ${brief(res.text, 120)}`,
      );
    } else {
      const code = shape.value.code;
      const expected = TABLE[code];
      if (expected !== undefined && expected !== res.status) {
        problems.push(`code ${code} carries HTTP ${res.status}, the table says ${expected}`);
      }
    }
    for (const [re, what] of LEAK_PATTERNS) if (re.test(res.text)) problems.push(`error body contains ${what}`);
    for (const s of this.secrets) if (s.length >= 8 && res.text.includes(s)) problems.push('error body contains a secret or token');
    this.errors.push({
      scenario: this.scenarioId,
      request: `${res.method} ${new URL(res.url).pathname}`,
      status: res.status,
      contentType: ct,
      body: res.text.slice(0, 500),
      code: typeof (res.json as { code?: unknown } | undefined)?.code === 'string' ? (res.json as { code: string }).code : null,
      problems,
    });
  }

  private isAthError(value: unknown): boolean {
    return validateATHError(value).valid;
  }

  /** "→ status code": fails unless the response has that status and ATHError code. */
  expectError(res: HttpResponse, status: number | readonly number[], code: string | readonly string[], what: string): void {
    const statuses = typeof status === 'number' ? [status] : status;
    const codes = typeof code === 'string' ? [code] : code;
    const got = (res.json as { code?: unknown } | undefined)?.code;
    check(
      statuses.includes(res.status) && typeof got === 'string' && codes.includes(got),
      `${what}: expected ${statuses.join('/')} ${codes.join('/')}, got ${res.status} ${typeof got === 'string' ? got : brief(res.text, 160)}`,
    );
  }

  expectStatus(res: HttpResponse, status: number | readonly number[], what: string): void {
    const statuses = typeof status === 'number' ? [status] : status;
    check(statuses.includes(res.status), `${what}: expected HTTP ${statuses.join('/')}, got ${res.status} ${brief(res.text, 200)}`);
  }

  // ---------------------------------------------------------------- fixtures

  /** att(aud): the implementer origin for register/authorize/GET agent. */
  get aud(): string {
    return this.base;
  }

  get tokenAud(): string {
    return this.url(PATHS.token);
  }

  requireDiscovery(): void {
    if (!this.providerId) skip(`discovery failed, so the provider is unknown: ${this.discoveryProblem ?? 'no provider'}`);
  }

  /** A registration request body for `agent`, valid unless overridden. */
  async registrationBody(
    agent: Agent,
    opts: { scopes?: string[]; redirectUris?: string[] | null; providers?: { provider_id: string; scopes: string[] }[] } = {},
  ): Promise<Record<string, unknown>> {
    this.requireDiscovery();
    const body: Record<string, unknown> = {
      agent_id: agent.agentId,
      agent_attestation: await agent.attest(this.aud),
      developer: { name: 'ath-conformance', id: 'ath-conformance-suite' },
      requested_providers: opts.providers ?? [{ provider_id: this.providerId, scopes: opts.scopes ?? this.offeredScopes }],
      purpose: 'ATH conformance testing',
    };
    if (opts.redirectUris !== null) body['redirect_uris'] = opts.redirectUris ?? [AGENT_REDIRECT_URI];
    return body;
  }

  /** Registers a fresh agent and returns the parsed registration (fails unless 201/200). */
  async registerNew(
    label: string,
    opts: { scopes?: string[]; redirectUris?: string[] | null; agent?: Agent } = {},
  ): Promise<Registration> {
    const agent = opts.agent ?? (await this.agents.create(label));
    const body = await this.registrationBody(agent, opts);
    const res = await this.post(PATHS.register, body);
    this.expectStatus(res, [201, 200], `registering ${label}`);
    return this.parseRegistration(agent, res, body);
  }

  parseRegistration(agent: Agent, res: HttpResponse, body: Record<string, unknown>): Registration {
    const json = res.json as Record<string, unknown> | undefined;
    check(json && typeof json['client_id'] === 'string' && typeof json['client_secret'] === 'string', `registration answer lacks credentials: ${brief(res.text)}`);
    const providers = Array.isArray(json['approved_providers']) ? (json['approved_providers'] as Record<string, unknown>[]) : [];
    const mine = providers.find((p) => p['provider_id'] === this.providerId);
    const secret = json['client_secret'];
    this.secrets.add(secret);
    const redirect = Array.isArray(body['redirect_uris']) ? ((body['redirect_uris'] as string[])[0] ?? null) : null;
    return {
      agent,
      clientId: json['client_id'],
      clientSecret: secret,
      status: String(json['agent_status']),
      approved: Array.isArray(mine?.['approved_scopes']) ? (mine['approved_scopes'] as string[]) : [],
      denied: Array.isArray(mine?.['denied_scopes']) ? (mine['denied_scopes'] as string[]) : [],
      redirectUri: redirect,
      body: json,
    };
  }

  private static requireApproved(reg: Registration): Registration {
    if (reg.status !== 'approved' || reg.approved.length === 0) {
      skip(
        `the target did not approve the suite's agent (agent_status ${reg.status}, approved ${JSON.stringify(reg.approved)}); configure auto-approval for conformance agents`,
      );
    }
    return reg;
  }

  /** REG1: an approved agent with redirect_uris (shared by scenarios that do not change it). */
  async primary(): Promise<Registration> {
    this.reg1 ??= this.registerNew('reg1');
    return RunContext.requireApproved(await this.reg1.catch((e: unknown) => skip(`REG1 could not be registered: ${String(e)}`)));
  }

  /** REG2: a second approved agent, without redirect_uris. */
  async secondary(): Promise<Registration> {
    this.reg2 ??= this.registerNew('reg2', { redirectUris: null });
    return RunContext.requireApproved(await this.reg2.catch((e: unknown) => skip(`REG2 could not be registered: ${String(e)}`)));
  }

  /** A scope the registration does not have approved: a policy-denied offered scope, else an unknown one. */
  unapprovedScope(reg: Registration): string {
    return reg.denied.find((s) => this.offeredScopes.includes(s)) ?? reg.denied[0] ?? UNKNOWN_SCOPE;
  }

  async authorizeBody(reg: Registration, overrides: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const body: Record<string, unknown> = {
      client_id: reg.clientId,
      agent_attestation: await reg.agent.attest(this.aud),
      provider_id: this.providerId,
      scopes: reg.approved.slice(0, 1),
      state: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url'),
      ...(reg.redirectUri ? { user_redirect_uri: reg.redirectUri } : {}),
    };
    for (const [k, v] of Object.entries(overrides)) {
      if (v === undefined) delete body[k];
      else body[k] = v;
    }
    return body;
  }

  async authorize(reg: Registration, overrides: Record<string, unknown> = {}): Promise<HttpResponse> {
    return this.post(PATHS.authorize, await this.authorizeBody(reg, overrides));
  }

  /** Authorizes and returns the parsed answer (fails unless 200). */
  async startSession(
    reg: Registration,
    overrides: Record<string, unknown> = {},
  ): Promise<{ authorizationUrl: string; sessionId: string; body: Record<string, unknown> }> {
    const body = await this.authorizeBody(reg, overrides);
    const res = await this.post(PATHS.authorize, body);
    this.expectStatus(res, 200, 'authorize');
    const json = res.json as Record<string, unknown>;
    check(typeof json['authorization_url'] === 'string' && typeof json['ath_session_id'] === 'string', `authorize answer: ${brief(res.text)}`);
    return { authorizationUrl: json['authorization_url'], sessionId: json['ath_session_id'], body };
  }

  async tokenBody(reg: Registration, sessionId: string, code: string, overrides: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const body: Record<string, unknown> = {
      grant_type: 'authorization_code',
      client_id: reg.clientId,
      client_secret: reg.clientSecret,
      agent_attestation: await reg.agent.attest(this.tokenAud),
      code,
      ath_session_id: sessionId,
    };
    for (const [k, v] of Object.entries(overrides)) {
      if (v === undefined) delete body[k];
      else body[k] = v;
    }
    return body;
  }

  async token(reg: Registration, sessionId: string, code: string, overrides: Record<string, unknown> = {}): Promise<HttpResponse> {
    const res = await this.post(PATHS.token, await this.tokenBody(reg, sessionId, code, overrides));
    const tok = (res.json as { access_token?: unknown } | undefined)?.access_token;
    if (typeof tok === 'string') this.secrets.add(tok);
    return res;
  }

  requireFlow(): FlowDriver {
    if (this.profile !== 'full') skip('needs --profile full');
    if (!this.flow) skip('no consent driver: the full profile needs --native-login-url/--native-username/--native-password (native) or the suite upstream (gateway)');
    return this.flow;
  }

  requireApiMap(): ApiMap {
    const map = this.apiMap;
    if (!map || map.operations.length === 0) skip('needs --api-map (native API operations and the scope each needs)');
    if (!this.apiBase) fail('ath-app.json has no usable api_base');
    return map;
  }

  /** Number of token requests the mock AS received (null without the suite upstream). */
  upstreamTokenRequests(): number | null {
    return this.upstream ? this.upstream.tokenRequests.length : null;
  }

  /** Upstream access tokens the mock AS issued. */
  upstreamTokens(): string[] {
    return this.upstream ? [...this.upstream.issuedTokens.keys()] : [];
  }

  apiUrl(path: string): string {
    const base = (this.apiBase ?? this.base).replace(/\/+$/, '');
    return `${base}${path.startsWith('/') ? path : `/${path}`}`;
  }
}
