/**
 * Driving the user's side of Phase B (checklist FLOW): opening `authorization_url` in a "browser",
 * consenting, and ending at the callback.
 *
 * - native, `http`: a cookie-jar client. The operator supplies a test user; the suite logs in
 *   through a plain form (fields `username`, `password`), then fills the consent page, which must
 *   follow the convention in the README (a POST form; scope checkboxes `name="scope"`; submit
 *   buttons `name="decision"` with values `approve` / `deny`).
 * - native, `chromium`: the same through real headless Chromium (playwright-core).
 * - gateway: a cookie-jar client through the target's launch URL (and its interstitial, if it shows
 *   one: continued with decision=approve) to the suite's mock AS and back to the target's
 *   `/ath/callback`.
 */
import { Browser, type HttpClient, type HttpResponse } from './http.js';
import { brief, check, fail, skip } from './assert.js';
import type { NativeLogin } from './types.js';
import type { MockUpstream } from './upstream.js';

export interface ConsentChoice {
  decision: 'approve' | 'deny';
  /** Scopes the user grants; default: what the page offers / what was requested. */
  scopes?: readonly string[];
  /** Extra scope values the user "grants" beyond the request (C-135). */
  extraScopes?: readonly string[];
  /** Gateway: make the mock AS token endpoint fail this way (C-108). */
  upstreamFailure?: 'invalid_grant' | 'server_error';
  /** Gateway: the mock AS omits `scope` in its token answer (C-110). */
  omitScope?: boolean;
}

export interface ConsentResult {
  /** The answer to the consent submission (native) or the callback (gateway). */
  status: number;
  location: string | null;
  /** Query of a redirect to the agent's user_redirect_uri, when that is where it went. */
  agentRedirect: URLSearchParams | null;
  contentType: string | null;
  body: string;
  /** Set-Cookie headers the target sent while the browser opened authorization_url (C-089). */
  launchCookies: string[];
  /** Every response seen (for leak scans). */
  responses: HttpResponse[];
}

export interface PendingConsent {
  readonly choice: ConsentChoice;
  readonly launchCookies: string[];
  readonly responses: HttpResponse[];
  /** native: the consent form; gateway: the callback URL the AS redirected to. */
  readonly form?: ParsedForm;
  readonly callbackUrl?: string;
  /** The upstream `state` (the callback's / the consent form's), when visible. */
  readonly state: string | null;
}

export interface FlowDriver {
  readonly kind: 'native-http' | 'native-chromium' | 'gateway-http';
  /** A new logged-in browser (its own cookie jar). */
  newBrowser(): Promise<Browser>;
  /** Opens authorization_url in `browser` and gets to the point of decision (not yet delivered). */
  begin(authorizationUrl: string, choice: ConsentChoice, browser: Browser): Promise<PendingConsent>;
  /** Delivers the decision (native: submits the form; gateway: opens the callback) from `browser`. */
  finish(pending: PendingConsent, browser: Browser, tamper?: { state?: string }): Promise<ConsentResult>;
  /** begin + finish in one fresh browser (or in real Chromium for the chromium driver). */
  consent(authorizationUrl: string, choice: ConsentChoice): Promise<ConsentResult>;
  close(): Promise<void>;
}

// ------------------------------------------------------------------ HTML forms

export interface ParsedForm {
  action: string;
  method: string;
  fields: { name: string; value: string; type: string; checked: boolean }[];
  buttons: { name: string; value: string }[];
}

const decode = (s: string): string =>
  s
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#(\d+);/g, (_m, d: string) => String.fromCharCode(Number(d)))
    .replace(/&amp;/g, '&');

function attrs(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([\w:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    const name = m[1]!.toLowerCase();
    out[name] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/** Every <form> of a page, with its inputs and submit buttons (a plain-HTML parser for simple pages). */
export function parseForms(html: string, pageUrl: string): ParsedForm[] {
  const forms: ParsedForm[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const a = attrs(m[1] ?? '');
    const inner = m[2] ?? '';
    const fields: ParsedForm['fields'] = [];
    const buttons: ParsedForm['buttons'] = [];
    for (const i of inner.matchAll(/<input\b([^>]*)>/gi)) {
      const ia = attrs(i[1] ?? '');
      const type = (ia['type'] ?? 'text').toLowerCase();
      if (!ia['name']) continue;
      if (type === 'submit') buttons.push({ name: ia['name'], value: ia['value'] ?? '' });
      else fields.push({ name: ia['name'], value: ia['value'] ?? (type === 'checkbox' ? 'on' : ''), type, checked: 'checked' in ia });
    }
    for (const b of inner.matchAll(/<button\b([^>]*)>/gi)) {
      const ba = attrs(b[1] ?? '');
      if (ba['name'] && (ba['type'] ?? 'submit').toLowerCase() === 'submit') buttons.push({ name: ba['name'], value: ba['value'] ?? '' });
    }
    forms.push({
      action: new URL(a['action'] || pageUrl, pageUrl).toString(),
      method: (a['method'] ?? 'get').toUpperCase(),
      fields,
      buttons,
    });
  }
  return forms;
}

function formBody(form: ParsedForm, extra: [string, string][]): string {
  const p = new URLSearchParams();
  for (const f of form.fields) {
    if (f.type === 'checkbox' || f.type === 'radio') continue;
    p.append(f.name, f.value);
  }
  for (const [k, v] of extra) p.append(k, v);
  return p.toString();
}

// ------------------------------------------------------------------ native, cookie jar

export class NativeHttpDriver implements FlowDriver {
  readonly kind: 'native-http' | 'native-chromium' = 'native-http';
  constructor(
    protected readonly http: HttpClient,
    protected readonly target: string,
    protected readonly login: NativeLogin,
  ) {}

  async newBrowser(): Promise<Browser> {
    const browser = new Browser(this.http);
    const page = await browser.navigate(this.login.url, { max: 3 });
    const last = page[page.length - 1]!;
    check(last.status === 200, `login page ${this.login.url} answered ${last.status}`);
    const form = parseForms(last.text, last.url).find((f) => f.fields.some((x) => x.type === 'password' || x.name === 'password'));
    check(form, `no login form with a password field at ${this.login.url}`);
    const body = formBody(
      { ...form, fields: form.fields.filter((f) => f.name !== 'username' && f.name !== 'password') },
      [
        ['username', this.login.username],
        ['password', this.login.password],
      ],
    );
    const res = await browser.request(form.action, {
      method: form.method === 'GET' ? 'GET' : 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    check(res.status < 400, `login failed: ${res.status} ${brief(res.text, 120)}`);
    return browser;
  }

  async begin(authorizationUrl: string, choice: ConsentChoice, browser: Browser): Promise<PendingConsent> {
    const origin = new URL(this.target).origin;
    const chain = await browser.navigate(authorizationUrl, { follow: (u) => u.origin === origin, max: 5 });
    const last = chain[chain.length - 1]!;
    check(last.status === 200, `opening authorization_url ended with ${last.status} ${brief(last.text, 160)}`);
    const forms = parseForms(last.text, last.url);
    const form = forms.find((f) => f.buttons.some((b) => b.name === 'decision')) ?? forms.find((f) => f.fields.some((x) => x.name === 'scope'));
    check(form, 'the consent page has no form following the convention (submit buttons name="decision")');
    return {
      choice,
      form,
      launchCookies: chain.flatMap((r) => (new URL(r.url).origin === origin ? [...r.setCookies] : [])),
      responses: chain,
      state: form.fields.find((f) => f.name === 'state')?.value ?? null,
    };
  }

  async finish(pending: PendingConsent, browser: Browser, tamper: { state?: string } = {}): Promise<ConsentResult> {
    const form = pending.form;
    if (!form) fail('internal: no consent form');
    const choice = pending.choice;
    const offered = form.fields.filter((f) => f.type === 'checkbox' && f.name === 'scope');
    const granted = choice.scopes ?? offered.map((f) => f.value);
    const extra: [string, string][] = [];
    if (choice.decision === 'approve') {
      for (const s of granted) extra.push(['scope', s]);
      for (const s of choice.extraScopes ?? []) extra.push(['scope', s]);
    }
    const button = form.buttons.find((b) => b.name === 'decision' && b.value === choice.decision);
    check(button, `the consent form has no button name="decision" value="${choice.decision}"`);
    extra.push([button.name, button.value]);
    let body = formBody(form, extra);
    if (tamper.state !== undefined) {
      const p = new URLSearchParams(body);
      p.set('state', tamper.state);
      body = p.toString();
    }
    const res = await browser.request(form.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    return toResult(res, this.target, pending);
  }

  async consent(authorizationUrl: string, choice: ConsentChoice): Promise<ConsentResult> {
    const browser = await this.newBrowser();
    return this.finish(await this.begin(authorizationUrl, choice, browser), browser);
  }

  async close(): Promise<void> {}
}

function toResult(res: HttpResponse, target: string, pending: PendingConsent): ConsentResult {
  const location = res.header('location') ?? null;
  let agentRedirect: URLSearchParams | null = null;
  if (location && res.status >= 300 && res.status < 400) {
    const loc = new URL(location, res.url);
    if (loc.origin !== new URL(target).origin) agentRedirect = loc.searchParams;
  }
  return {
    status: res.status,
    location,
    agentRedirect,
    contentType: res.header('content-type') ?? null,
    body: res.text,
    launchCookies: pending.launchCookies,
    responses: [...pending.responses, res],
  };
}

// ------------------------------------------------------------------ native, Chromium

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface PwBrowser {
  newContext(): Promise<PwContext>;
  close(): Promise<void>;
}
interface PwContext {
  newPage(): Promise<PwPage>;
  route(url: string | RegExp | ((u: URL) => boolean), handler: (route: PwRoute) => Promise<void>): Promise<void>;
  cookies(): Promise<{ name: string; httpOnly: boolean; secure: boolean; sameSite: string }[]>;
  close(): Promise<void>;
}
interface PwRoute {
  request(): { url(): string };
  fulfill(r: { status: number; contentType: string; body: string }): Promise<void>;
  abort(): Promise<void>;
  continue(): Promise<void>;
}
interface PwPage {
  goto(url: string): Promise<unknown>;
  fill(selector: string, value: string): Promise<void>;
  click(selector: string): Promise<void>;
  setChecked(selector: string, checked: boolean): Promise<void>;
  $$eval<R>(selector: string, fn: (els: Element[]) => R): Promise<R>;
  waitForResponse(pred: (r: PwResponse) => boolean, opts?: { timeout?: number }): Promise<PwResponse>;
  waitForLoadState(state?: string): Promise<void>;
  url(): string;
}
interface PwResponse {
  url(): string;
  status(): number;
  request(): { method(): string };
  headers(): Record<string, string>;
  text(): Promise<string>;
}
interface Element {
  getAttribute(name: string): string | null;
}

/** The native consent driven by real headless Chromium (playwright-core, loaded on demand). */
export class NativeChromiumDriver extends NativeHttpDriver {
  override readonly kind = 'native-chromium' as const;
  private browser: PwBrowser | null = null;

  constructor(
    http: HttpClient,
    target: string,
    login: NativeLogin,
    private readonly executablePath: string,
    private readonly timeoutMs: number,
  ) {
    super(http, target, login);
  }

  private async chromium(): Promise<PwBrowser> {
    if (this.browser) return this.browser;
    let pw: { chromium: { launch(o: Record<string, unknown>): Promise<PwBrowser> } };
    try {
      const name: string = 'playwright-core'; // optional peer: resolved at run time only
      const loaded: unknown = await import(name);
      pw = loaded as typeof pw;
    } catch {
      skip('consent driver chromium needs playwright-core installed next to @athkit/conformance');
    }
    this.browser = await pw.chromium.launch({ executablePath: this.executablePath, args: CHROMIUM_ARGS, timeout: this.timeoutMs });
    return this.browser;
  }

  override async consent(authorizationUrl: string, choice: ConsentChoice): Promise<ConsentResult> {
    const browser = await this.chromium();
    const context = await browser.newContext();
    const targetOrigin = new URL(this.target).origin;
    const loginOrigin = new URL(this.login.url).origin;
    let agentUrl: string | null = null;
    // Only the target (and the login page) may be reached; a redirect to the agent is recorded, not followed.
    await context.route(
      (u: URL) => u.origin !== targetOrigin && u.origin !== loginOrigin,
      async (route) => {
        agentUrl ??= route.request().url();
        await route.fulfill({ status: 200, contentType: 'text/plain', body: 'agent redirect captured by ath-conformance' });
      },
    );
    try {
      const page = await context.newPage();
      await page.goto(this.login.url);
      await page.fill('input[name="username"]', this.login.username);
      await page.fill('input[name="password"]', this.login.password);
      await Promise.all([page.waitForLoadState('load'), page.click('form [type="submit"], form button')]);
      const launch = page.waitForResponse((r) => r.url().startsWith(targetOrigin), { timeout: this.timeoutMs });
      await page.goto(authorizationUrl);
      const launched = await launch;
      const launchCookies = launched.headers()['set-cookie']?.split('\n') ?? [];
      const offered = await page.$$eval('input[type="checkbox"][name="scope"]', (els) => els.map((e) => e.getAttribute('value') ?? ''));
      const wanted = new Set(choice.scopes ?? offered);
      for (const s of offered) await page.setChecked(`input[type="checkbox"][name="scope"][value="${s}"]`, wanted.has(s));
      const submitted = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(targetOrigin), {
        timeout: this.timeoutMs,
      });
      await page.click(`[name="decision"][value="${choice.decision}"]`);
      const res = await submitted;
      const status = res.status();
      const headers = res.headers();
      const location = headers['location'] ?? agentUrl;
      const body = status >= 300 && status < 400 ? '' : await res.text();
      const cookies = await context.cookies();
      const cookieNotes = cookies.map(
        (c) => `${c.name}=x; ${c.httpOnly ? 'HttpOnly; ' : ''}${c.secure ? 'Secure; ' : ''}SameSite=${c.sameSite}`,
      );
      let agentRedirect: URLSearchParams | null = null;
      if (location) {
        const loc = new URL(location, res.url());
        if (loc.origin !== targetOrigin) agentRedirect = loc.searchParams;
      }
      return {
        status,
        location: location ?? null,
        agentRedirect,
        contentType: headers['content-type'] ?? null,
        body,
        launchCookies: launchCookies.length ? launchCookies : cookieNotes,
        responses: [],
      };
    } finally {
      await context.close();
    }
  }

  override async close(): Promise<void> {
    await this.browser?.close();
    this.browser = null;
  }
}

// ------------------------------------------------------------------ gateway

export class GatewayHttpDriver implements FlowDriver {
  readonly kind = 'gateway-http' as const;
  constructor(
    private readonly http: HttpClient,
    private readonly target: string,
    private readonly upstream: MockUpstream,
  ) {}

  newBrowser(): Promise<Browser> {
    return Promise.resolve(new Browser(this.http));
  }

  async begin(authorizationUrl: string, choice: ConsentChoice, browser: Browser): Promise<PendingConsent> {
    this.upstream.nextChoice = choice;
    const callback = new URL('/ath/callback', this.target).toString();
    const asOrigin = this.upstream.asOrigin;
    const targetOrigin = new URL(this.target).origin;
    const follow = (u: URL) => (u.origin === targetOrigin && !u.toString().startsWith(callback)) || u.origin === asOrigin;
    const chain = await browser.navigate(authorizationUrl, { follow, max: 6 });
    let last = chain[chain.length - 1]!;
    // A gateway may first show its own interstitial (threats D10: the user confirms which agent asks
    // before anything goes upstream). It follows the consent-form convention: a POST form with submit
    // buttons name="decision" (approve / deny). The suite continues there; the user's actual
    // decision (choice) is made at the mock AS.
    if (last.status === 200 && new URL(last.url).origin === targetOrigin) {
      const form = parseForms(last.text, last.url).find((f) => f.method === 'POST' && f.buttons.some((b) => b.name === 'decision' && b.value === 'approve'));
      check(form, `opening authorization_url ended at a page on the target without a form to continue (submit button name="decision" value="approve"): ${brief(last.text, 160)}`);
      check(new URL(form.action).origin === targetOrigin, `the interstitial form posts to another origin: ${form.action}`);
      const posted = await browser.request(form.action, {
        method: 'POST',
        // What a browser sends with a same-origin form submission.
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: targetOrigin, referer: last.url },
        body: formBody(form, [['decision', 'approve']]),
      });
      chain.push(posted);
      const loc = posted.header('location');
      if (posted.status >= 300 && posted.status < 400 && loc && follow(new URL(loc, posted.url))) {
        chain.push(...(await browser.navigate(new URL(loc, posted.url).toString(), { follow, max: 6 })));
      }
      last = chain[chain.length - 1]!;
    }
    const loc = last.header('location');
    const next = loc ? new URL(loc, last.url).toString() : '';
    check(next.startsWith(callback), `the mock AS did not send the browser back to ${callback}: ${last.status} ${brief(next || last.text, 160)}`);
    return {
      choice,
      callbackUrl: next,
      launchCookies: chain.flatMap((r) => (new URL(r.url).origin === targetOrigin ? [...r.setCookies] : [])),
      responses: chain,
      state: new URL(next).searchParams.get('state'),
    };
  }

  async finish(pending: PendingConsent, browser: Browser, tamper: { state?: string } = {}): Promise<ConsentResult> {
    const url = new URL(pending.callbackUrl!);
    if (tamper.state !== undefined) {
      if (tamper.state === '') url.searchParams.delete('state');
      else url.searchParams.set('state', tamper.state);
    }
    const res = await browser.request(url.toString());
    return toResult(res, this.target, pending);
  }

  async consent(authorizationUrl: string, choice: ConsentChoice): Promise<ConsentResult> {
    const browser = await this.newBrowser();
    return this.finish(await this.begin(authorizationUrl, choice, browser), browser);
  }

  async close(): Promise<void> {}
}
