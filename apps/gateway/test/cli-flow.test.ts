/**
 * Issue 6, "Done when": the main job (`npm run demo:gateway`, i.e. createDemoStack) serves the
 * gateway in front of Example Mail, and the `ath` CLI flow it prints succeeds through it.
 *
 * The printed one-liner is taken from the banner and run as-is by bash in a temp HOME/TMPDIR; the
 * only stand-ins are `npx` (a shell function running the built packages/cli/dist/bin.js, so nothing
 * can reach a registry) and `xdg-open`/`open` (record the URL instead of opening a browser). The
 * user's part (gateway interstitial, Example Mail login as alice, consent) is done in headless
 * Chromium. Then the built `ath` binary continues in the same ATH_HOME: token, calls inside and
 * outside the granted scopes, revoke, and a replay of the revoked token. All traffic is on 127.0.0.1.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { browserTestsEnabled, launchChromium } from '@athkit/testkit';
import type { Browser } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoStack, type DemoStack } from '../src/demo.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const BIN = join(ROOT, 'packages', 'cli', 'dist', 'bin.js');

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface Running {
  pid: number;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves with the exit code ('exit', not 'close': a background job may keep the pipes open). */
  exited: Promise<number>;
}

/** Spawns a process in its own process group, collecting stdout+stderr. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Running {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (c: Buffer): void => {
    output += c.toString();
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  return {
    pid: child.pid!,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = pattern.exec(output);
          if (m) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; output so far:\n${output}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}

/** One `ath` invocation (the built binary) with a bounded run time. */
async function ath(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<RunResult> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => void (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => void (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

/** Every file under `dir` (relative path → content). */
function snapshot(dir: string, base = dir, out = new Map<string, string>()): Map<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) snapshot(p, base, out);
    else out.set(p.slice(base.length), readFileSync(p, 'utf8'));
  }
  return out;
}

describe.skipIf(!browserTestsEnabled)('the demo banner’s ath CLI flow through the gateway (issue 6)', () => {
  let dir: string;
  let demo: DemoStack;
  let browser: Browser;
  let identityPort: number;
  const groups: number[] = [];

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-b', 'packages/cli/tsconfig.lib.json'], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
    dir = mkdtempSync(join(tmpdir(), 'ath-cli-flow-'));
    identityPort = await freePort();
    demo = await createDemoStack({
      dataDir: join(dir, 'data'),
      port: 0,
      mailPort: 0,
      mailApiPort: 0,
      agentHosts: [`127.0.0.1:${identityPort}`],
      logger: pino({ level: 'silent' }),
    });
    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    await stopIdentityServers().catch(() => undefined);
    await browser?.close();
    await demo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The user's part in Chromium: the gateway interstitial, then Example Mail's login and consent. */
  async function consent(authorizationUrl: string): Promise<void> {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      await page.goto(authorizationUrl);
      expect(await page.locator('h1').textContent()).toContain('Demo agent wants to access your Example Mail account');
      await page.getByRole('button', { name: /Continue to Example Mail/ }).click();
      await page.waitForSelector('input[name="username"]');
      expect(page.url().startsWith(demo.mail.issuer)).toBe(true);
      await page.fill('input[name="username"]', 'alice');
      await page.fill('input[name="password"]', 'alice-password');
      await page.click('button[value="login"]');
      await page.waitForSelector('button[value="approve"]');
      const offered = await Promise.all((await page.locator('input[name="scope"]').all()).map((box) => box.getAttribute('value')));
      expect(offered).toEqual(['mail:read']); // only what `ath authorize --scopes` asked for
      await Promise.all([page.waitForURL(`${demo.gatewayUrl}/ath/callback?**`), page.click('button[value="approve"]')]);
      expect(await page.locator('h1').textContent()).toBe('Access granted');
    } finally {
      await context.close();
    }
  }

  /** Stops the background `ath identity --serve` jobs the printed flow leaves running (`kill %%` in the banner). */
  async function stopIdentityServers(): Promise<void> {
    for (const pgid of groups.splice(0)) {
      try {
        process.kill(-pgid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    // Wait until the identity port is free again.
    for (let i = 0; i < 50; i++) {
      const free = await new Promise<boolean>((resolve) => {
        const probe = createServer();
        probe.once('error', () => resolve(false));
        probe.listen(identityPort, '127.0.0.1', () => probe.close(() => resolve(true)));
      });
      if (free) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`port ${identityPort} still in use`);
  }

  /** Runs the banner's one-liner as printed (bash, fresh HOME), completing the consent in Chromium. */
  async function printedFlow(name: string): Promise<{ athHome: string; out: string; url: string; env: Record<string, string> }> {
    const line = /^ {2}(export ATH_HOME=.*)$/m.exec(demo.banner)?.[1];
    expect(line, demo.banner).toBeDefined();
    expect(line).toContain(`npx ath discover ${demo.gatewayUrl} --save`);
    expect(line).toContain(`http://127.0.0.1:${identityPort}/`);

    const base = join(dir, name);
    const home = join(base, 'home');
    const fakeBin = join(base, 'bin');
    mkdirSync(home, { recursive: true });
    mkdirSync(fakeBin, { recursive: true });
    const opened = join(base, 'opened-url');
    for (const opener of ['xdg-open', 'open']) {
      writeFileSync(join(fakeBin, opener), `#!/bin/sh\nprintf '%s\\n' "$1" > '${opened}'\n`);
      chmodSync(join(fakeBin, opener), 0o755);
    }
    const script = [
      'set -u',
      `npx() { if [ "$1" = ath ]; then shift; '${process.execPath}' '${BIN}' "$@"; else echo "unexpected: npx $*" >&2; return 127; fi; }`,
      line!,
      'rc=$?',
      'echo "FLOW_EXIT=$rc ATH_HOME=$ATH_HOME"',
      'exit $rc',
    ].join('\n');
    const env = { PATH: `${fakeBin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: home, TMPDIR: base, LANG: 'C.UTF-8' };
    const flow = run('bash', ['-c', script], env);
    groups.push(flow.pid);
    const killer = setTimeout(() => process.kill(-flow.pid, 'SIGKILL'), 90_000);
    try {
      const url = (await flow.waitFor(/Open this URL in your browser to approve:\n(http:\/\/\S+)\n/, 30_000))[1]!;
      expect(url.startsWith(`${demo.gatewayUrl}/ath/authorize/start?`)).toBe(true);
      await flow.waitFor(/Waiting for approval/);
      await consent(url);
      const done = await flow.waitFor(/FLOW_EXIT=(\d+) ATH_HOME=(\S+)\n/, 30_000);
      expect(await flow.exited).toBe(0);
      expect(done[1], flow.output()).toBe('0');
      const athHome = done[2]!;
      expect(athHome.startsWith(base)).toBe(true);
      expect(readFileSync(opened, 'utf8').trim()).toBe(url); // --open handed the URL to the opener
      return { athHome, out: flow.output(), url, env };
    } finally {
      clearTimeout(killer);
    }
  }

  it('keygen … identity --serve … discover, register, authorize (Chromium consent), call; then token, 403, revoke, TOKEN_REVOKED', async () => {
    // 1. The one-liner exactly as the banner prints it, for this stack's ports.
    const { athHome, out, env: baseEnv } = await printedFlow('first');
    expect(out).toMatch(/serving http:\/\/127\.0\.0\.1:\d+\/tmp\.[^/]+\/agent\.json/);
    expect(out).toMatch(/providers:\n {2}mail \(Example Mail\): .*mail:read mail:send mail:delete/);
    expect(out).toMatch(/status: +approved\n {2}mail: approved mail:read mail:send\n/);
    expect(out).toMatch(/scopes: +mail:read\n/);
    const mailbox = JSON.parse(/^\{"messages".*$/m.exec(out)![0]) as { messages: { to: string; subject: string }[]; total: number };
    expect(mailbox.total).toBeGreaterThan(0);
    expect(mailbox.messages.some((m) => m.to === 'alice@example.mail')).toBe(true);
    expect(out).not.toMatch(/ath_secret_|ath_tk_[A-Za-z0-9_-]{20}/); // secrets stay hidden

    // 2. The same agent continues with the built `ath` binary in that ATH_HOME.
    const env = { ...baseEnv, ATH_HOME: athHome };
    const tok = await ath(['token', '--provider', 'mail', '--json', '--show-secret'], env);
    expect(tok.code, tok.stderr).toBe(0);
    const token = JSON.parse(tok.stdout) as { access_token: string; scopes: string[]; provider_id: string };
    expect(token).toMatchObject({ provider_id: 'mail', scopes: ['mail:read'] });
    expect(token.access_token).toMatch(/^ath_/);

    const list = await ath(['call', 'GET', '/v1/messages', '--provider', 'mail', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject({ status: 200, body: { total: mailbox.total } });
    const me = await ath(['call', 'GET', '/v1/me', '--provider', 'mail', '--json'], env);
    expect(me.code, me.stderr).toBe(0);
    expect(JSON.parse(me.stdout)).toMatchObject({ status: 200, body: { username: 'alice', token: { scope: 'mail:read', client_id: 'ath-gateway' } } });

    // Outside the granted scopes: mail:send was approved for the agent but not consented; mail:delete neither.
    const send = await ath(['call', 'POST', '/v1/messages/send', '--provider', 'mail', '-d', '{"to":"bob@example.mail","subject":"hi","body":"x"}'], env);
    expect(send.code).toBe(4);
    expect(send.stderr).toMatch(/SCOPE_NOT_APPROVED, HTTP 403/);
    const del = await ath(['call', 'DELETE', `/v1/messages/x`, '--provider', 'mail'], env);
    expect(del.code).toBe(4);
    expect(del.stderr).toMatch(/SCOPE_NOT_APPROVED, HTTP 403/);

    // Revoke. The CLI forgets the token; a stale copy of it (another process of the same agent) is refused by the gateway.
    const stale = snapshot(join(athHome, 'credentials'));
    const rev = await ath(['revoke', '--provider', 'mail'], env);
    expect(rev.code, rev.stderr).toBe(0);
    expect(rev.stdout).toMatch(/revoked the token for mail/);
    const forgotten = await ath(['call', 'GET', '/v1/messages', '--provider', 'mail'], env);
    expect(forgotten.code).toBe(7);
    expect(forgotten.stderr).toMatch(/no access token for mail.*\(no_token\)/);
    for (const [rel, content] of stale) writeFileSync(join(athHome, 'credentials', rel), content, { mode: 0o600 });
    const revoked = await ath(['call', 'GET', '/v1/messages', '--provider', 'mail'], env);
    expect(revoked.code, revoked.stdout + revoked.stderr).toBe(7);
    expect(revoked.stderr).toMatch(/TOKEN_REVOKED, HTTP 401/);
    expect(revoked.stderr).toMatch(/hint: .*authorize again/);
    expect(revoked.stdout).not.toContain('"messages"');
    const direct = await fetch(`${demo.gatewayUrl}/ath/proxy/mail/v1/messages`, {
      headers: { authorization: `Bearer ${token.access_token}`, 'x-ath-agent-id': /agent_id = (\S+)/.exec(out)![1]! },
    });
    expect(direct.status).toBe(401);
    expect(((await direct.json()) as { code: string }).code).toBe('TOKEN_REVOKED');
  }, 150_000);

  it('the printed line works again (after `kill %%`): a fresh ATH_HOME is a new agent, not 409 AGENT_ALREADY_REGISTERED', async () => {
    await stopIdentityServers();
    if (!existsSync(join(dir, 'first'))) await printedFlow('first'); // when run on its own (-t)
    await stopIdentityServers();
    const first = readdirSync(join(dir, 'first')).find((f) => f.startsWith('tmp.'));
    const { out } = await printedFlow('second');
    expect(out).toMatch(/registered at /);
    expect(out).not.toMatch(/already registered|AGENT_ALREADY_REGISTERED/);
    expect(out).not.toContain(`/${first}/agent.json`);
    expect(out).toMatch(/^\{"messages":\[/m);
  }, 150_000);
});
