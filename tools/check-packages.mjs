#!/usr/bin/env node
// Checks every publishable @athkit/* package as a user gets it: publint and attw on the packed
// package, then the tarballs are installed into a scratch project outside the workspace and each
// package's smoke script (below) runs there. Needs `npm run build` first.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** What must work after `npm install <tarball>`: plain Node, no TypeScript, no workspace. */
const SMOKE = {
  '@athkit/schemas': `
    import { validateAuthorizationRequest, ENDPOINTS, ERROR_STATUS } from '@athkit/schemas';
    import schema from '@athkit/schemas/ath.schema.json' with { type: 'json' };
    if (validateAuthorizationRequest({}).valid) throw new Error('validator accepted {}');
    if (ENDPOINTS.token.path !== '/ath/token' || ERROR_STATUS.TOKEN_REVOKED !== 401) throw new Error('tables');
    if (!schema.$defs.TokenResponse) throw new Error('raw schema');`,
  '@athkit/core': `
    import { AthEngine, MemoryStore, generateAgentKeyPair, signAttestation, AthError } from '@athkit/core';
    const engine = new AthEngine({ store: new MemoryStore(), baseUrl: 'https://x.example', providers: [] });
    const err = await engine.register({}).catch((e) => e);
    if (!(err instanceof AthError) || err.status !== 400) throw new Error('engine did not reject an empty body');
    const { privateKey } = await generateAgentKeyPair();
    const jwt = await signAttestation({ privateKey, agentId: 'https://a.example/.well-known/agent.json', audience: 'https://x.example' });
    if (jwt.split('.').length !== 3) throw new Error('signing');`,
  '@athkit/client': `
    import { generateAgentKey, createIdentityDocument, attestationAudience, AthClientError, processRegistrationResponse } from '@athkit/client';
    import { FileCredentialStore } from '@athkit/client/node';
    const key = await generateAgentKey();
    const doc = await createIdentityDocument({ agentId: 'https://a.example/.well-known/agent.json', name: 'A', developer: { name: 'D', id: 'd' }, key });
    if (doc.public_key.kid !== key.kid || 'd' in doc.public_key) throw new Error('identity document');
    if (attestationAudience('https://gw.example', 'token') !== 'https://gw.example/ath/token') throw new Error('audience');
    const err = await processRegistrationResponse(new Response('nope', { status: 201 })).catch((e) => e);
    if (!(err instanceof AthClientError) || err.code !== 'invalid_response') throw new Error('error model');
    if (typeof FileCredentialStore !== 'function') throw new Error('node subpath');`,
  '@athkit/cli': `
    import { execFileSync } from 'node:child_process';
    const help = execFileSync('npx', ['--no-install', 'ath', '--help'], { encoding: 'utf8' });
    if (!/^  authorize  /m.test(help)) throw new Error('ath --help: ' + help);
    if (!help.includes('Exit codes:')) throw new Error('ath --help lacks exit codes');
    const { EXIT } = await import('@athkit/cli');
    if (EXIT.REAUTHORIZE !== 7) throw new Error('exports');`,
  '@athkit/conformance': `
    import { SCENARIOS, validateMessage, checkExamples, runConformance } from '@athkit/conformance';
    if (SCENARIOS.length < 50) throw new Error('scenario registry');
    if (validateMessage('ATHError', {}).valid) throw new Error('validate accepted {}');
    const examples = checkExamples();
    if (examples.length === 0 || examples.some((o) => o.valid !== o.expectValid)) throw new Error('example corpus missing or wrong');
    const refused = await runConformance({ target: 'https://example.com', mode: 'native' }).then(() => false, (e) => /allow-remote/.test(e.message));
    if (!refused) throw new Error('a remote target was not refused');`,
  '@athkit/storage': `
    import { openStore } from '@athkit/storage';
    const store = await openStore('memory:');
    if (!(await store.markJtiUsed('a', 'j', Date.now() + 1000))) throw new Error('memory store');
    await store.close();`,
  '@athkit/fastify': `
    import Fastify from 'fastify';
    import { athFastify } from '@athkit/fastify';
    import { MemoryStore } from '@athkit/core';
    const app = Fastify();
    await app.register(athFastify, {
      baseUrl: 'https://shop.example', service: { app_id: 'shop', name: 'Shop', api_base: '/api' }, scopes: ['orders:read'],
      store: new MemoryStore(), authenticateUser: () => null, loginUrl: '/login',
    });
    app.get('/api/orders', { config: { ath: { scope: 'orders:read' } } }, () => ({ orders: [] }));
    await app.ready();
    const doc = (await app.inject({ method: 'GET', url: '/.well-known/ath-app.json' })).json();
    if (doc.app_id !== 'shop' || doc.auth.scopes_supported[0] !== 'orders:read') throw new Error('discovery');
    const reg = await app.inject({ method: 'POST', url: '/ath/agents/register', payload: {} });
    if (reg.statusCode !== 400 || reg.json().code !== 'INVALID_REQUEST') throw new Error('register: ' + reg.body);
    const api = await app.inject({ method: 'GET', url: '/api/orders' });
    if (api.statusCode !== 401 || api.json().code !== 'TOKEN_INVALID') throw new Error('guard: ' + api.body);
    if ((await app.inject({ method: 'GET', url: '/ath/nope' })).statusCode !== 404) throw new Error('404');
    await app.close();`,
};

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

const packages = readdirSync(join(root, 'packages'))
  .map((d) => join(root, 'packages', d))
  .filter((dir) => existsSync(join(dir, 'package.json')))
  .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }))
  .filter(({ pkg }) => !pkg.private && existsSync(join(root, 'packages', pkg.name.split('/')[1], 'dist')));

let failures = 0;
const fail = (msg, detail = '') => {
  failures++;
  console.error(`FAIL ${msg}${detail ? `\n${detail}` : ''}`);
};

const work = mkdtempSync(join(tmpdir(), 'athkit-packs-'));
try {
  const tarballs = [];
  for (const { dir, pkg } of packages) {
    try {
      run('npx', ['publint', '--strict'], dir);
      console.log(`ok   publint ${pkg.name}`);
    } catch (e) {
      fail(`publint ${pkg.name}`, `${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
    try {
      run('npx', ['attw', '--pack', '.', '--profile', 'esm-only', '--format', 'table-flipped'], dir);
      console.log(`ok   attw ${pkg.name}`);
    } catch (e) {
      fail(`attw ${pkg.name}`, `${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
    const out = run('npm', ['pack', '--json', '--pack-destination', work], dir);
    const [info] = JSON.parse(out.slice(out.indexOf('[')));
    if (info.files.some((f) => f.path.endsWith('.tsbuildinfo'))) fail(`${pkg.name} tarball contains a .tsbuildinfo`);
    tarballs.push({ name: pkg.name, file: join(work, info.filename) });
  }

  const consumer = join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module', allowScripts: { 'better-sqlite3': true } }),
  );
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs.map((t) => t.file)], consumer);
  for (const { name } of tarballs) {
    const smoke = SMOKE[name];
    if (!smoke) {
      fail(`${name} has no smoke script in tools/check-packages.mjs`);
      continue;
    }
    const file = join(consumer, `smoke-${name.split('/')[1]}.mjs`);
    writeFileSync(file, smoke);
    try {
      run(process.execPath, [file], consumer);
      console.log(`ok   ${name} works when installed from its tarball`);
    } catch (e) {
      fail(`${name} smoke test from the tarball`, `${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(failures ? `check:packages: ${failures} failure(s)` : 'check:packages: all packages ok');
process.exit(failures ? 1 : 0);
