/**
 * The gateway configured the way `@athkit/conformance` asks for (gateway mode): the suite's
 * provider entry, approval policy and plain-http agent host, from `MockUpstream.gatewayConfigFragment`
 * in the gateway's own config format, parsed by the real `parseConfig` and served by `createGateway`
 * on 127.0.0.1.
 */
import { UPSTREAM_SECRET_ENV } from '@athkit/conformance';
import YAML from 'yaml';
import { parseConfig, parseConfigText } from '../../src/config.js';
import { createLogger } from '../../src/observability.js';
import { createGateway, type Gateway } from '../../src/server.js';
import { freePort } from './stack.js';

export interface ConformanceGateway {
  url: string;
  gw: Gateway;
  /** Log lines at warn and above (5xx answers), for failure messages. */
  logLines: string[];
  close(): Promise<void>;
}

/**
 * `fragment` is what `ath-conformance gateway-config` prints (`MockUpstream.gatewayConfigFragment`);
 * it goes through YAML and the gateway's own config parser, as a config file would.
 */
export async function startConformanceGateway(
  fragment: Record<string, unknown>,
  upstreamClientSecret: string,
): Promise<ConformanceGateway> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = { [UPSTREAM_SECRET_ENV]: upstreamClientSecret };
  const fromFile = parseConfigText(YAML.stringify(fragment), 'conformance.yaml') as Record<string, unknown>;
  const config = parseConfig(
    {
      dev: true,
      publicUrl: url,
      listen: { host: '127.0.0.1', port },
      storage: 'memory:',
      secrets: {
        cookieKey: Buffer.alloc(32, 7).toString('base64url'),
        vaultKey: Buffer.alloc(32, 8).toString('base64url'),
      },
      // One client (the suite) on one IP sends a few hundred ATH requests per run; the suite does not
      // test rate limits, so the defaults (1200/min per IP and endpoint) would only add flakiness.
      rateLimits: { perIp: false, perAgent: false },
      logLevel: 'warn',
      ...fromFile,
    },
    env,
  );
  const logLines: string[] = [];
  const logger = createLogger('warn', {
    write: (line: string) => void logLines.push(line),
  } as unknown as NodeJS.WritableStream);
  const gw = await createGateway(config, { logger, env, defaultMetrics: false });
  await gw.listen({ port, host: '127.0.0.1' });
  return { url, gw, logLines, close: () => gw.close() };
}
