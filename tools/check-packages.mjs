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
  '@athkit/storage': `
    import { openStore } from '@athkit/storage';
    const store = await openStore('memory:');
    if (!(await store.markJtiUsed('a', 'j', Date.now() + 1000))) throw new Error('memory store');
    await store.close();`,
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
