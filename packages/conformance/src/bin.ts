#!/usr/bin/env node
/**
 * ath-conformance run --target <url> --mode gateway|native [options]
 * ath-conformance gateway-config --agent-port N --upstream-as-port N --upstream-api-port N
 * ath-conformance validate --def <Def> <file.json>
 * ath-conformance validate --examples
 * ath-conformance list
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { parseApiMap, parseExpectedFailures } from './config.js';
import { formatResultLine, formatTable, toJUnit } from './report.js';
import { OptionsError, runConformance } from './runner.js';
import { SCENARIOS } from './registry.js';
import type { ConformanceOptions } from './types.js';
import { gatewayConfigFragment, UPSTREAM_SECRET_ENV } from './upstream.js';
import { checkExamples, validateMessage } from './validate.js';

const USAGE = `usage:
  ath-conformance run --target <base-url> --mode gateway|native [--profile basic|full]
      [--report out.json] [--junit out.xml] [--expected-failures file.yaml] [--only C-1xx,B.alg-none,...]
      [--agent-host 127.0.0.1] [--agent-port N] [--timeout-ms N] [--max-requests N] [--allow-remote]
      [--provider <provider_id>] [--api-map map.yaml] [--secret-canary <value>]...
      native full:  --native-login-url <url> --native-username <u> --native-password <p> [--consent-driver http|chromium] [--chromium-path /usr/bin/chromium]
      gateway full: [--upstream-as-port N] [--upstream-api-port N]   (upstream client secret: $ATH_CONFORMANCE_UPSTREAM_SECRET)
  ath-conformance gateway-config --agent-port N --upstream-as-port N --upstream-api-port N [--agent-host 127.0.0.1]
      prints the athkit gateway config keys the gateway full profile needs (YAML)
  ath-conformance validate --def <Def> <file.json>
  ath-conformance validate --examples
  ath-conformance list`;

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new OptionsError(`--${name} must be a non-negative integer`);
  return n;
}

async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string' },
      mode: { type: 'string' },
      profile: { type: 'string', default: 'basic' },
      report: { type: 'string' },
      junit: { type: 'string' },
      'expected-failures': { type: 'string' },
      only: { type: 'string' },
      'agent-host': { type: 'string' },
      'agent-port': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'max-requests': { type: 'string' },
      'allow-remote': { type: 'boolean', default: false },
      provider: { type: 'string' },
      'api-map': { type: 'string' },
      'secret-canary': { type: 'string', multiple: true },
      'native-login-url': { type: 'string' },
      'native-username': { type: 'string' },
      'native-password': { type: 'string' },
      'consent-driver': { type: 'string', default: 'http' },
      'chromium-path': { type: 'string' },
      'upstream-as-port': { type: 'string' },
      'upstream-api-port': { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
  if (!values.target || !values.mode) throw new OptionsError('run needs --target and --mode');
  if (values.profile !== 'basic' && values.profile !== 'full') throw new OptionsError('--profile must be basic or full');
  if (values['consent-driver'] !== 'http' && values['consent-driver'] !== 'chromium') throw new OptionsError('--consent-driver must be http or chromium');
  const login = values['native-login-url'];
  if (login && (!values['native-username'] || values['native-password'] === undefined)) {
    throw new OptionsError('--native-login-url needs --native-username and --native-password');
  }
  const options: ConformanceOptions = {
    target: values.target,
    mode: values.mode as ConformanceOptions['mode'],
    profile: values.profile,
    allowRemote: values['allow-remote'],
    consentDriver: values['consent-driver'],
    log: (line) => console.error(line),
  };
  if (values.only) options.only = values.only.split(',').map((s) => s.trim()).filter(Boolean);
  if (values['agent-host']) options.agentHost = values['agent-host'];
  const agentPort = int('agent-port', values['agent-port']);
  if (agentPort !== undefined) options.agentPort = agentPort;
  const timeoutMs = int('timeout-ms', values['timeout-ms']);
  if (timeoutMs !== undefined) options.timeoutMs = timeoutMs;
  const maxRequests = int('max-requests', values['max-requests']);
  if (maxRequests !== undefined) options.maxRequests = maxRequests;
  if (values.provider) options.providerId = values.provider;
  if (values['expected-failures']) options.expectedFailures = parseExpectedFailures(readFileSync(values['expected-failures'], 'utf8'));
  if (values['api-map']) options.apiMap = parseApiMap(readFileSync(values['api-map'], 'utf8'));
  if (values['secret-canary']) options.secretCanaries = values['secret-canary'];
  if (login) options.nativeLogin = { url: login, username: values['native-username']!, password: values['native-password']! };
  if (values['chromium-path']) options.chromiumPath = values['chromium-path'];
  const asPort = int('upstream-as-port', values['upstream-as-port']);
  const apiPort = int('upstream-api-port', values['upstream-api-port']);
  const upstreamSecret = process.env[UPSTREAM_SECRET_ENV];
  if (asPort !== undefined || apiPort !== undefined || upstreamSecret) {
    options.gatewayUpstream = {
      ...(asPort !== undefined ? { asPort } : {}),
      ...(apiPort !== undefined ? { apiPort } : {}),
      ...(upstreamSecret ? { clientSecret: upstreamSecret } : {}),
    };
  }
  if (options.mode === 'gateway' && options.profile === 'full' && !upstreamSecret) {
    console.error(`note: ${UPSTREAM_SECRET_ENV} is not set, so the mock AS uses a random client secret the gateway cannot know (F.upstream-exchange will fail)`);
  }
  if (!values.quiet) options.onResult = (r) => console.error(formatResultLine(r));

  const report = await runConformance(options);
  console.log(formatTable(report));
  if (values.report) writeFileSync(values.report, `${JSON.stringify(report, null, 2)}\n`);
  if (values.junit) writeFileSync(values.junit, toJUnit(report));
  return report.ok ? 0 : 1;
}

/** The gateway config keys for the suite's upstream, for pinned ports (configure the gateway before `run`). */
function gatewayConfig(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      'agent-host': { type: 'string', default: '127.0.0.1' },
      'agent-port': { type: 'string' },
      'upstream-host': { type: 'string', default: '127.0.0.1' },
      'upstream-as-port': { type: 'string' },
      'upstream-api-port': { type: 'string' },
    },
  });
  const agentPort = int('agent-port', values['agent-port']);
  const asPort = int('upstream-as-port', values['upstream-as-port']);
  const apiPort = int('upstream-api-port', values['upstream-api-port']);
  if (!agentPort || !asPort || !apiPort) throw new OptionsError('gateway-config needs non-zero --agent-port, --upstream-as-port and --upstream-api-port (pin the same ones in run)');
  const host = values['upstream-host'];
  const fragment = gatewayConfigFragment({
    asOrigin: `http://${host}:${asPort}`,
    apiOrigin: `http://${host}:${apiPort}`,
    agentHostPort: `${values['agent-host']}:${agentPort}`,
  });
  console.log(`# athkit gateway config keys for ath-conformance (gateway mode, full profile); merge into gateway.yaml.
# Set ${UPSTREAM_SECRET_ENV} to the same value for the gateway and for \`ath-conformance run\`.
${YAML.stringify(fragment)}`);
  return 0;
}

function validate(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { def: { type: 'string' }, examples: { type: 'boolean', default: false } },
  });
  if (values.examples) {
    const outcomes = checkExamples();
    const wrong = outcomes.filter((o) => o.valid !== o.expectValid);
    for (const o of wrong) console.log(`WRONG ${o.file}: expected ${o.expectValid ? 'valid' : 'invalid'}`);
    console.log(`${outcomes.length} examples, ${wrong.length} wrong`);
    return wrong.length ? 1 : 0;
  }
  const file = positionals[0];
  if (!values.def || !file) throw new OptionsError('validate needs --def <Def> <file.json>');
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    console.log(`${file}: not JSON (${e instanceof Error ? e.message : String(e)})`);
    return 1;
  }
  const result = validateMessage(values.def, value);
  if (result.valid) {
    console.log(`${file}: valid ${result.def}`);
    return 0;
  }
  console.log(`${file}: invalid ${result.def} (${result.violations.length} violation${result.violations.length === 1 ? '' : 's'})`);
  for (const v of result.violations) console.log(`  ${v.pointer || '(root)'}: ${v.message}`);
  return 1;
}

function list(): number {
  for (const s of SCENARIOS) console.log(`${s.id.padEnd(30)} ${s.profile.padEnd(5)} ${s.modes.join('/').padEnd(14)} ${s.checklist.join(',')}`);
  return 0;
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  try {
    switch (command) {
      case 'run':
        return await run(rest);
      case 'gateway-config':
        return gatewayConfig(rest);
      case 'validate':
        return validate(rest);
      case 'list':
        return list();
      default:
        console.error(USAGE);
        return command === undefined || command === '--help' || command === 'help' ? 0 : 2;
    }
  } catch (e) {
    if (e instanceof OptionsError || (e instanceof TypeError && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`ath-conformance: ${e.message}\n${USAGE}`);
      return 2;
    }
    console.error(`ath-conformance: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return 2;
  }
}

process.exitCode = await main();
