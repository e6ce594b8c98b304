/** The built bin (dist/bin.js) run as a user would: exit codes, reports, validate. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { freePort, startTarget, type TestTarget } from './support/target.js';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const root = join(pkg, '..', '..');
const bin = join(pkg, 'dist', 'bin.js');
const examples = join(root, 'schemas', 'ath', '0.1', 'examples');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function build(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('npx', ['tsc', '-b', 'packages/conformance/tsconfig.lib.json'], { cwd: root, timeout: 110_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`tsc -b failed:\n${stdout}${stderr}`)) : resolve(),
    );
  });
}

let good: TestTarget;
let broken: TestTarget;
let agentPort: number;
const dir = mkdtempSync(join(tmpdir(), 'ath-conformance-cli-'));

beforeAll(async () => {
  await build();
  agentPort = await freePort();
  good = await startTarget({ agentHostPort: `127.0.0.1:${agentPort}` });
  broken = await startTarget({ agentHostPort: `127.0.0.1:${agentPort}`, fault: 'replay' });
}, 120_000);
afterAll(async () => {
  await good.close();
  await broken.close();
});

describe('ath-conformance run', () => {
  it('exits 0 against a conforming target and writes JSON and JUnit reports', async () => {
    const report = join(dir, 'report.json');
    const junit = join(dir, 'junit.xml');
    const r = await cli(['run', '--target', good.url, '--mode', 'native', '--agent-port', String(agentPort), '--report', report, '--junit', junit, '--quiet']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/OK: nothing unexpected failed/);
    expect(r.stdout).toMatch(/PASS\s+B\.alg-none\s+C-013/);
    expect(r.stdout).toMatch(/SKIP\s+G\.happy-path.*needs --profile full/);
    const json = JSON.parse(readFileSync(report, 'utf8')) as { ok: boolean; summary: { FAIL: number } };
    expect(json.ok).toBe(true);
    expect(json.summary.FAIL).toBe(0);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/^<\?xml/);
    expect(xml).toMatch(/<testcase classname="ath\.B" name="B\.alg-none \[C-013\]/);
  }, 120_000);

  it('exits 1 against a broken target, and 0 when that failure is expected', async () => {
    const args = ['run', '--target', broken.url, '--mode', 'native', '--agent-port', String(agentPort), '--only', 'B.replay-register,B.baseline', '--quiet'];
    const r = await cli(args);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/FAIL\s+B\.replay-register/);
    const xf = join(dir, 'xf.yaml');
    writeFileSync(xf, '- id: C-020\n  reason: replay cache disabled in this build\n');
    const r2 = await cli([...args, '--expected-failures', xf]);
    expect(r2.code, r2.stdout).toBe(0);
    expect(r2.stdout).toMatch(/XFAIL\s+B\.replay-register/);
  }, 120_000);

  it('full profile with the login hook and an API map file', async () => {
    const map = join(dir, 'api-map.yaml');
    writeFileSync(map, 'operations:\n  - { method: GET, path: /products, scope: "products:read" }\n  - { method: POST, path: /orders, scope: "orders:write", body: { item: x } }\nunmapped: { method: DELETE, path: /nope }\n');
    const r = await cli([
      'run', '--target', good.url, '--mode', 'native', '--profile', 'full', '--agent-port', String(agentPort),
      '--api-map', map, '--native-login-url', good.login.url, '--native-username', good.login.username, '--native-password', good.login.password,
      '--only', 'H.unmapped-denied,G.happy-path,F.browser-binding', '--quiet',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 passed, 0 failed/);
  }, 120_000);

  it('refuses a non-loopback target (exit 2)', async () => {
    const r = await cli(['run', '--target', 'https://example.com', '--mode', 'native']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--allow-remote/);
  });
});

describe('ath-conformance validate', () => {
  it('prints every violation with its JSON pointer', async () => {
    const r = await cli(['validate', '--def', 'TokenResponse', join(examples, 'TokenResponse', 'invalid', 'missing-access_token.json')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/invalid TokenResponse/);
    expect(r.stdout).toMatch(/^\s+\/access_token: is required$/m);
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ code: 42 }));
    const r2 = await cli(['validate', '--def', 'ATHError', file]);
    expect(r2.stdout).toMatch(/\/code: /);
    expect(r2.stdout).toMatch(/\/message: is required/);
  });

  it('accepts a valid message', async () => {
    const r = await cli(['validate', '--def', 'AgentIdentityDocument', join(examples, 'AgentIdentityDocument', 'valid', 'jwk-public-key.json')]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/valid AgentIdentityDocument/);
  });

  it('checks the whole example corpus', async () => {
    const r = await cli(['validate', '--examples']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/\d+ examples, 0 wrong/);
  });
});

describe('ath-conformance gateway-config', () => {
  it('prints the athkit gateway config keys for pinned ports (secret only by env name)', async () => {
    const r = await cli(['gateway-config', '--agent-port', '7800', '--upstream-as-port', '7801', '--upstream-api-port', '7802']);
    expect(r.code, r.stderr).toBe(0);
    const doc = YAML.parse(r.stdout) as {
      allowInsecureAgentHosts: string[];
      approval: { autoApprove: string[]; deny: string[] };
      providers: { provider_id: string; agent_approval_required: boolean; api_base: string; oauth: Record<string, string>; scope_map: { methods: string[]; path: string; scope: string }[] }[];
    };
    expect(doc.allowInsecureAgentHosts).toEqual(['127.0.0.1:7800']);
    expect(doc.approval).toEqual({ autoApprove: ['conf:read', 'conf:write'], deny: ['conf:admin'] });
    expect(doc.providers.map((p) => [p.provider_id, p.agent_approval_required])).toEqual([
      ['ath-conformance', true],
      ['ath-conformance-p2', true],
      ['ath-conformance-open', false],
    ]);
    const main = doc.providers[0]!;
    expect(main.oauth).toEqual({
      authorization_endpoint: 'http://127.0.0.1:7801/authorize',
      token_endpoint: 'http://127.0.0.1:7801/token',
      client_id: 'ath-conformance-client',
      client_secret_env: 'ATH_CONFORMANCE_UPSTREAM_SECRET',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(main.api_base).toBe('http://127.0.0.1:7802/');
    expect(main.scope_map).toContainEqual({ methods: ['GET', 'HEAD'], path: '/v1/items', scope: 'conf:read' });
    expect(r.stdout).not.toMatch(/client_secret:/);
  });

  it('needs the three ports (exit 2)', async () => {
    const r = await cli(['gateway-config', '--agent-port', '7800']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs non-zero --agent-port, --upstream-as-port and --upstream-api-port/);
  });
});
