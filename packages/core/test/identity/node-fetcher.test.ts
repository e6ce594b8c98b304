import type { LookupAddress } from 'node:dns';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AthError } from '../../src/errors.js';
import {
  createSafeFetcher,
  type LookupAllFunction,
  type SafeFetcher,
  type SafeFetcherOptions,
} from '../../src/identity/node-fetcher.js';
import {
  startAgentServer,
  startCanary,
  type AgentServer,
  type Canary,
  type TestAgent,
} from '../support/agent-server.js';
import { useNetworkGuard } from '@athkit/testkit';
import { TLS_TEST_CERT, TLS_TEST_HOST, TLS_TEST_KEY } from '../support/tls-fixture.js';

const guard = useNetworkGuard();

/** A resolver that answers from a table and records every question (no real DNS in tests). */
function tableLookup(table: Record<string, string[] | ((call: number) => string[])>) {
  const calls: string[] = [];
  const lookup: LookupAllFunction = (hostname, _options, callback) => {
    calls.push(hostname);
    const entry = table[hostname];
    const answer = typeof entry === 'function' ? entry(calls.filter((h) => h === hostname).length) : entry;
    setImmediate(() => {
      if (!answer) callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      else
        callback(
          null,
          answer.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
        );
    });
  };
  return { lookup, calls };
}

async function failure(promise: Promise<unknown>): Promise<AthError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AthError);
    const e = err as AthError;
    expect(e.code).toBe('INVALID_ATTESTATION');
    expect(e.status).toBe(401);
    return e;
  }
  throw new Error('expected the fetch to fail');
}

describe('createSafeFetcher', () => {
  let ad: AgentServer;
  let agent: TestAgent;
  let canary: Canary;
  const fetchers: SafeFetcher[] = [];
  const make = (options: SafeFetcherOptions = {}): SafeFetcher => {
    const f = createSafeFetcher({
      allowInsecure: [ad.hostPort],
      connectTimeoutMs: 300,
      readTimeoutMs: 700,
      ...options,
    });
    fetchers.push(f);
    return f;
  };

  beforeAll(async () => {
    ad = await startAgentServer();
    agent = await ad.addAgent('a');
    canary = await startCanary();
  });
  afterEach(async () => {
    agent.setMode({ kind: 'ok' });
    await Promise.all(fetchers.splice(0).map((f) => f.close()));
  });
  afterAll(async () => {
    await ad.close();
    await canary.close();
  });

  it('fetches a document from an allow-listed http host:port with accept: application/json and no credentials', async () => {
    const res = await make().fetch(new URL(agent.agentId));
    expect(res.status).toBe(200);
    expect(res.contentType).toBe('application/json');
    expect(JSON.parse(res.body)).toMatchObject({ agent_id: agent.agentId });
    const req = ad.requests.at(-1)!;
    expect(req.method).toBe('GET');
    expect(req.headers['accept']).toBe('application/json');
    expect(req.headers['cookie']).toBeUndefined();
    expect(req.headers['authorization']).toBeUndefined();
  });

  it('returns non-2xx statuses without a body (the resolver turns them into failures)', async () => {
    agent.setMode({ kind: 'status', status: 404 });
    expect(await make().fetch(new URL(agent.agentId))).toEqual({ status: 404, contentType: null, body: '' });
  });

  describe('threats B1 / C-034: literal internal addresses are refused before connecting', () => {
    const forms = (port: number) => [
      `https://127.0.0.1:${port}/.well-known/agent.json`,
      `https://2130706433:${port}/.well-known/agent.json`,
      `https://0x7f.1:${port}/.well-known/agent.json`,
      `https://0177.0.0.1:${port}/.well-known/agent.json`,
      `https://127.1:${port}/.well-known/agent.json`,
      `https://[::1]:${port}/.well-known/agent.json`,
      `https://[::ffff:7f00:1]:${port}/.well-known/agent.json`,
      `https://[::ffff:a9fe:a9fe]/.well-known/agent.json`,
      `https://169.254.169.254/latest/meta-data/`,
      `https://10.0.0.1/.well-known/agent.json`,
      `https://192.168.1.1/.well-known/agent.json`,
      `https://100.64.0.1/.well-known/agent.json`,
      `https://0.0.0.0:${port}/.well-known/agent.json`,
      `https://[fd00::1]/.well-known/agent.json`,
      `https://[fe80::1]/.well-known/agent.json`,
      `https://[64:ff9b::a9fe:a9fe]/.well-known/agent.json`,
      `https://224.0.0.1/.well-known/agent.json`,
    ];

    it('every https literal form (WHATWG-normalised decimal/hex/octal IPv4 included) → ssrf_blocked, 0 canary hits', async () => {
      const fetcher = make();
      for (const url of forms(canary.port)) {
        const e = await failure(fetcher.fetch(new URL(url)));
        expect(e.details?.['reason'], url).toBe('ssrf_blocked');
        expect(e.message).not.toMatch(/\d+\.\d+\.\d+\.\d+/);
      }
      expect(canary.hits).toBe(0);
    });

    it('the same forms over plain http → refused (http is only for allow-listed host:port), 0 canary hits', async () => {
      const fetcher = make();
      for (const url of forms(canary.port).map((u) => u.replace('https:', 'http:'))) {
        const e = await failure(fetcher.fetch(new URL(url)));
        expect(['invalid_agent_id', 'ssrf_blocked'], url).toContain(e.details?.['reason']);
      }
      expect(canary.hits).toBe(0);
    });

    it('allow-listing is per host:port: another port on the allowed loopback address stays blocked (threats 3.0)', async () => {
      const e = await failure(make().fetch(new URL(`https://127.0.0.1:${canary.port}/x`)));
      expect(e.details?.['reason']).toBe('ssrf_blocked');
      expect(canary.hits).toBe(0);
    });

    it('localhost resolves to loopback → ssrf_blocked', async () => {
      const { lookup, calls } = tableLookup({ localhost: ['127.0.0.1', '::1'] });
      const e = await failure(
        make({ lookup }).fetch(new URL(`https://localhost:${canary.port}/.well-known/agent.json`)),
      );
      expect(e.details?.['reason']).toBe('ssrf_blocked');
      expect(calls).toEqual(['localhost']);
      expect(canary.hits).toBe(0);
    });

    it('file:, data: and ftp: URLs are refused', async () => {
      for (const url of [
        'file:///etc/passwd',
        'data:application/json,{}',
        `ftp://127.0.0.1:${canary.port}/agent.json`,
      ]) {
        expect((await failure(make().fetch(new URL(url)))).details?.['reason']).toBe('invalid_agent_id');
      }
      expect(canary.hits).toBe(0);
    });
  });

  describe('threats B2: hostnames resolving to internal addresses (injected resolver)', () => {
    it('agent-b.test → 127.0.0.1 (not allow-listed) → ssrf_blocked', async () => {
      const { lookup, calls } = tableLookup({ 'agent-b.test': ['127.0.0.1'] });
      const e = await failure(
        make({ lookup }).fetch(new URL(`https://agent-b.test:${canary.port}/.well-known/agent.json`)),
      );
      expect(e.details?.['reason']).toBe('ssrf_blocked');
      expect(calls).toEqual(['agent-b.test']);
      expect(canary.hits).toBe(0);
    });

    it('mixed answers [public, 127.0.0.1] are refused as a whole (no connection to either)', async () => {
      const { lookup } = tableLookup({ 'mixed.test': ['93.184.216.34', '127.0.0.1'] });
      const e = await failure(make({ lookup }).fetch(new URL('https://mixed.test/.well-known/agent.json')));
      expect(e.details?.['reason']).toBe('ssrf_blocked');
      expect(guard.violations).toEqual([]);
    });

    it('169.254.169.254.nip.io uses the injected resolver (no real DNS) and is refused', async () => {
      const { lookup, calls } = tableLookup({ '169.254.169.254.nip.io': ['169.254.169.254'] });
      const e = await failure(
        make({ lookup }).fetch(new URL('https://169.254.169.254.nip.io/latest/meta-data/')),
      );
      expect(e.details?.['reason']).toBe('ssrf_blocked');
      expect(calls).toEqual(['169.254.169.254.nip.io']);
    });

    it('an IPv4-mapped or NAT64 answer for a hostname is classified by its embedded address', async () => {
      const { lookup } = tableLookup({ 'm.test': ['::ffff:10.0.0.1'], 'n.test': ['64:ff9b::a9fe:a9fe'] });
      const fetcher = make({ lookup });
      for (const host of ['m.test', 'n.test']) {
        expect((await failure(fetcher.fetch(new URL(`https://${host}/a`)))).details?.['reason']).toBe(
          'ssrf_blocked',
        );
      }
    });

    it('error messages never reveal the resolved internal address', async () => {
      const { lookup } = tableLookup({ 'secret.test': ['10.11.12.13'] });
      const e = await failure(make({ lookup }).fetch(new URL('https://secret.test/.well-known/agent.json')));
      expect(JSON.stringify(e.toJSON())).not.toContain('10.11.12.13');
    });

    it('an unresolvable host → identity_document_unavailable', async () => {
      const { lookup } = tableLookup({});
      expect(
        (await failure(make({ lookup }).fetch(new URL('https://nowhere.test/a')))).details?.['reason'],
      ).toBe('identity_document_unavailable');
    });

    it('a resolver that never answers → identity_document_timeout within the connect timeout', async () => {
      const lookup: LookupAllFunction = () => {};
      const started = Date.now();
      const e = await failure(make({ lookup }).fetch(new URL('https://hang.test/a')));
      expect(e.details?.['reason']).toBe('identity_document_timeout');
      expect(Date.now() - started).toBeLessThan(5000);
    });
  });

  it('threats B3 DNS rebinding: the connection goes to the address that was validated, never re-resolved', async () => {
    // 127.0.0.2 listens on the same port as AD; a second resolution would reach it.
    const rebind = await startCanary({ host: '127.0.0.2', port: ad.port });
    try {
      const { lookup, calls } = tableLookup({
        'agent-b.test': (n) => (n === 1 ? ['127.0.0.1'] : ['127.0.0.2']),
      });
      const fetcher = make({ lookup, allowInsecure: [`agent-b.test:${ad.port}`, ad.hostPort] });
      const before = agent.fetches;
      const res = await fetcher.fetch(new URL(`http://agent-b.test:${ad.port}${agent.path}`));
      expect(res.status).toBe(200);
      expect(agent.fetches).toBe(before + 1);
      expect(calls).toEqual(['agent-b.test']);
      expect(rebind.hits).toBe(0);

      // A fresh connection resolves again; the rebound answer is not allow-listed and is refused.
      const fresh = make({ lookup, allowInsecure: [`agent-b.test:${ad.port}`, ad.hostPort] });
      const e = await failure(fresh.fetch(new URL(`http://agent-b.test:${ad.port}${agent.path}`)));
      expect(e.details?.['reason']).toBe('ssrf_blocked');
      expect(rebind.hits).toBe(0);
    } finally {
      await rebind.close();
    }
  });

  describe('threats B4: redirects are never followed', () => {
    it('302 to a canary → identity_document_redirect, canary 0 hits', async () => {
      agent.setMode({ kind: 'redirect', location: `${canary.url}/x` });
      expect(
        (await failure(make({ allowInsecure: [ad.hostPort, canary.hostPort] }).fetch(new URL(agent.agentId))))
          .details?.['reason'],
      ).toBe('identity_document_redirect');
      expect(canary.hits).toBe(0);
    });

    it('C-034: 302 to the metadata address → refused', async () => {
      agent.setMode({ kind: 'redirect', location: 'http://169.254.169.254/latest/meta-data/' });
      expect((await failure(make().fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_redirect',
      );
    });

    it('301 to a same-origin path → refused too (no redirects at all)', async () => {
      agent.setMode({ kind: 'redirect', status: 301, location: agent.path });
      expect((await failure(make().fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_redirect',
      );
    });
  });

  describe('threats B5: huge responses abort at the cap', () => {
    it('a 100 MB body without Content-Length aborts at 64 KiB', async () => {
      agent.setMode({ kind: 'huge' });
      const started = Date.now();
      expect((await failure(make().fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_too_large',
      );
      expect(Date.now() - started).toBeLessThan(3000);
    });

    it('a declared Content-Length above the cap is refused before reading', async () => {
      agent.setMode({ kind: 'huge', declareLength: true });
      expect((await failure(make().fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_too_large',
      );
    });

    it('an endless body aborts at the cap', async () => {
      agent.setMode({ kind: 'endless' });
      expect((await failure(make().fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_too_large',
      );
    });

    it('Content-Length: 10 followed by 10 MB: only the declared bytes are read', async () => {
      agent.setMode({ kind: 'lying-length', declared: 10, bytes: 10 * 1024 * 1024 });
      const res = await make()
        .fetch(new URL(agent.agentId))
        .catch((e: unknown) => e);
      // Either the 10 declared bytes (which are not a document) or a transport failure; never 10 MB.
      if (res instanceof AthError) expect(res.code).toBe('INVALID_ATTESTATION');
      else expect((res as { body: string }).body.length).toBeLessThanOrEqual(10);
    });

    it('a custom maxBytes is honoured', async () => {
      agent.setMode({ kind: 'ok' });
      expect((await failure(make({ maxBytes: 50 }).fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_too_large',
      );
    });
  });

  describe('threats B6 / C-032: slow responses abort within connect + read timeouts', () => {
    it('headers that never come → identity_document_timeout within the bound', async () => {
      agent.setMode({ kind: 'slow-headers', delayMs: Infinity });
      const started = Date.now();
      expect((await failure(make().fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_timeout',
      );
      expect(Date.now() - started).toBeLessThan(300 + 700 + 2000);
    });

    it('a 1-byte trickle → identity_document_timeout (the read timeout is total, not idle)', async () => {
      agent.setMode({ kind: 'trickle', intervalMs: 50 });
      const started = Date.now();
      expect((await failure(make().fetch(new URL(agent.agentId)))).details?.['reason']).toBe(
        'identity_document_timeout',
      );
      expect(Date.now() - started).toBeLessThan(300 + 700 + 2000);
    });

    it('50 slow fetches at once all end within the bound', async () => {
      agent.setMode({ kind: 'slow-headers', delayMs: Infinity });
      const fetcher = make();
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 50 }, () => failure(fetcher.fetch(new URL(agent.agentId)))),
      );
      expect(results.every((e) => e.details?.['reason'] === 'identity_document_timeout')).toBe(true);
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it('a closed port → identity_document_unavailable, with no address in the message', async () => {
      const closed = await startCanary();
      const port = closed.port;
      await closed.close();
      const e = await failure(
        make({ allowInsecure: [`127.0.0.1:${port}`] }).fetch(new URL(`http://127.0.0.1:${port}/a`)),
      );
      expect(e.details?.['reason']).toBe('identity_document_unavailable');
      expect(e.message).not.toContain('127.0.0.1');
    });
  });

  describe('https: the pinned address is dialled, the certificate is checked against the agent host', () => {
    let server: https.Server;
    let port: number;
    beforeAll(async () => {
      server = https.createServer({ cert: TLS_TEST_CERT, key: TLS_TEST_KEY }, (_req, res) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('fetches over TLS from the validated address with SNI and verification for the published name', async () => {
      const { lookup, calls } = tableLookup({ [TLS_TEST_HOST]: ['127.0.0.1'] });
      const f = make({ lookup, allowInsecure: [`127.0.0.1:${port}`], tls: { ca: TLS_TEST_CERT } });
      const res = await f.fetch(new URL(`https://${TLS_TEST_HOST}:${port}/agent.json`));
      expect(res).toMatchObject({ status: 200, body: '{"ok":true}' });
      expect(calls).toEqual([TLS_TEST_HOST]);
    });

    it('a certificate for another name, or an untrusted one, fails as identity_document_unavailable', async () => {
      const { lookup } = tableLookup({ 'other-name.test': ['127.0.0.1'], [TLS_TEST_HOST]: ['127.0.0.1'] });
      const trusted = make({ lookup, allowInsecure: [`127.0.0.1:${port}`], tls: { ca: TLS_TEST_CERT } });
      const e1 = await failure(trusted.fetch(new URL(`https://other-name.test:${port}/agent.json`)));
      expect(e1.details?.['reason']).toBe('identity_document_unavailable');
      const untrusted = make({ lookup, allowInsecure: [`127.0.0.1:${port}`] });
      const e2 = await failure(untrusted.fetch(new URL(`https://${TLS_TEST_HOST}:${port}/agent.json`)));
      expect(e2.details?.['reason']).toBe('identity_document_unavailable');
    });
  });

  it('rejects malformed allow-list entries at construction', () => {
    expect(() => createSafeFetcher({ allowInsecure: ['127.0.0.1'] })).toThrow(TypeError);
  });

  it('isInsecureAllowed matches canonical host:port only', () => {
    const f = make();
    expect(f.isInsecureAllowed(new URL(`http://${ad.hostPort}/x`))).toBe(true);
    expect(f.isInsecureAllowed(new URL(`http://127.0.0.1:${canary.port}/x`))).toBe(false);
    expect(f.isInsecureAllowed(new URL(`https://${ad.hostPort}/x`))).toBe(false);
  });
});
