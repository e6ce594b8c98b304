/**
 * `ath user …`: the user's side of the 9-step handshake (seed 000) — a device key enrolled with a
 * service, the pre-authorization credential for an agent (step 0), and the signed answer to a
 * confirmation request (step 7). The key lives in <ATH_HOME>/user-key.json (0600); it is the
 * user's, never the agent's.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserWallet, processServiceDiscoveryResponse, serviceDiscoveryRequest } from '@athkit/client';
import { readOptionalFile, writePrivateFile } from '@athkit/client/node';
import type { ServerJwks } from '@athkit/schemas';
import type { Command, Values } from './commands.js';
import type { Context } from './context.js';
import { ConfigError, EXIT, UsageError } from './errors.js';

const str = (v: Values[string]): string | undefined => (typeof v === 'string' ? v : undefined);

/** `7200`, `90m`, `2h`, `1d` → seconds. */
export function parseDuration(text: string): number {
  const m = /^([1-9][0-9]*)(s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new UsageError(`invalid duration "${text}" (use e.g. 7200, 90m, 2h)`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

const keyFile = (ctx: Context) => join(ctx.home, 'user-key.json');

async function loadWallet(ctx: Context): Promise<UserWallet> {
  const text = await readOptionalFile(keyFile(ctx));
  if (text === null) throw new ConfigError(`no user key at ${keyFile(ctx)}`, 'run `ath user init` first');
  const jwk = JSON.parse(text) as Parameters<typeof UserWallet.fromPrivateJwk>[0] & { user_did?: string };
  return UserWallet.fromPrivateJwk(jwk, jwk.user_did ?? '');
}

async function saveWallet(ctx: Context, wallet: UserWallet, overwrite: boolean): Promise<void> {
  await writePrivateFile(keyFile(ctx), `${JSON.stringify(await wallet.exportPrivateJwk(), null, 2)}\n`, {
    exclusive: !overwrite,
  });
}

async function serviceDocument(url: string): Promise<Record<string, unknown>> {
  return (await processServiceDiscoveryResponse(await serviceDiscoveryRequest(url)));
}

function print(ctx: Context, values: Values, json: unknown, human: string): void {
  ctx.io.stdout(values['json'] ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

/** Headers from repeated `--header "name: value"` and `--cookie`. */
function headers(values: Values): Record<string, string> {
  const out: Record<string, string> = {};
  const list = values['header'];
  for (const h of Array.isArray(list) ? list : typeof list === 'string' ? [list] : []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`--header must be "name: value", got "${h}"`);
    out[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const cookie = str(values['cookie']);
  if (cookie) out['cookie'] = cookie;
  return out;
}

const USAGE = `ath user init [--force]
       ath user enrol <service-url> [--cookie <cookie>] [--header "name: value"] [--push <device-url>]
       ath user authorize --service <url> --agent <agent_id> --scopes "<s1 s2>" [--expires 2h]
       ath user confirm <request.json> (--approve [--scopes "<s1>"] | --deny)
       ath user show`;

export const user: Command = {
  summary: 'the user side of the 9-step handshake: device key, pre-authorization, confirmation',
  usage: USAGE,
  description: `init     create the user's device key (<ATH_HOME>/user-key.json, mode 0600)
enrol    enrol the key with a service as the signed-in user (pass the service's session as --cookie or --header);
         --push names the device endpoint that receives confirmation requests (step 6)
authorize print a pre-authorization credential (a user-signed JWT) for an agent: step 0 of seed 000.
         TTLs above 1 h are allowed here; the service clamps the token to ≤ 1 h (AMB-17)
confirm  verify a pushed authorization_confirmation_request (service signature, ath-app.json server_jwks),
         then sign and post the decision to its confirmation endpoint (step 7)
show     print the enrolled user_did and the public key`,
  options: {
    force: { type: 'boolean', description: 'init: replace an existing user key' },
    cookie: {
      type: 'string',
      description: 'enrol: the service session cookie of the signed-in user',
      value: 'cookie',
    },
    header: {
      type: 'string',
      multiple: true,
      description: 'enrol: extra request header "name: value" (repeatable)',
      value: 'header',
    },
    push: { type: 'string', description: 'enrol: the device endpoint for step-6 pushes', value: 'url' },
    service: {
      type: 'string',
      description: 'authorize: the service URL (its ath-app.json gives server_did)',
      value: 'url',
    },
    agent: { type: 'string', description: 'authorize: the agent_id being authorized', value: 'agent_id' },
    scopes: { type: 'string', description: 'authorize/confirm: space-separated scopes', value: 'scopes' },
    expires: {
      type: 'string',
      description: 'authorize: credential lifetime (default 2h)',
      value: 'duration',
    },
    approve: { type: 'boolean', description: 'confirm: approve (all requested scopes, or --scopes)' },
    deny: { type: 'boolean', description: 'confirm: deny' },
  },
  async run(ctx, values, positionals) {
    const [sub, arg] = positionals;
    switch (sub) {
      case 'init': {
        const wallet = await UserWallet.generate();
        try {
          await saveWallet(ctx, wallet, values['force'] === true);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST')
            throw new ConfigError(
              `a user key already exists at ${keyFile(ctx)}`,
              'use --force to replace it',
            );
          throw err;
        }
        print(
          ctx,
          values,
          { key_file: keyFile(ctx), kid: wallet.kid, public_jwk: wallet.publicJwk },
          `wrote ${keyFile(ctx)} (mode 0600)\nkid: ${wallet.kid}`,
        );
        return EXIT.OK;
      }
      case 'enrol':
      case 'enroll': {
        if (!arg) throw new UsageError('ath user enrol <service-url>');
        const wallet = await loadWallet(ctx);
        const push = str(values['push']);
        const result = await wallet.enrol(arg, {
          headers: headers(values),
          ...(push ? { pushEndpoint: push } : {}),
        });
        await saveWallet(ctx, wallet, true);
        print(
          ctx,
          values,
          result,
          `enrolled as ${result.user_did} at ${result.server_did} (kid ${result.kid})`,
        );
        return EXIT.OK;
      }
      case 'authorize': {
        const service = str(values['service']);
        const agent = str(values['agent']);
        const scopes = (str(values['scopes']) ?? '').split(/\s+/).filter(Boolean);
        if (!service || !agent || scopes.length === 0)
          throw new UsageError('ath user authorize --service <url> --agent <agent_id> --scopes "<s1 s2>"');
        const wallet = await loadWallet(ctx);
        const serverDid = (await serviceDocument(service))['server_did'];
        if (typeof serverDid !== 'string')
          throw new ConfigError(
            'the service does not advertise the 9-step handshake (no server_did in ath-app.json)',
          );
        const seconds = parseDuration(str(values['expires']) ?? '2h');
        const credential = await wallet.preAuthorize({
          clientDid: agent,
          audience: serverDid,
          scopes,
          expiresInSeconds: seconds,
        });
        print(
          ctx,
          values,
          { credential, user_did: wallet.userDid, agent, scopes, expires_in: seconds },
          `${credential}\n# give this credential to the agent; it expires in ${seconds} s${seconds > 3600 ? ' (tokens are still capped at 1 h by the service)' : ''}`,
        );
        return EXIT.OK;
      }
      case 'confirm': {
        if (!arg) throw new UsageError('ath user confirm <request.json> --approve|--deny');
        if ((values['approve'] === true) === (values['deny'] === true))
          throw new UsageError('pass exactly one of --approve or --deny');
        const wallet = await loadWallet(ctx);
        const raw = JSON.parse(arg === '-' ? await readStdin() : await readFile(arg, 'utf8')) as {
          confirmation_endpoint?: unknown;
        };
        if (typeof raw.confirmation_endpoint !== 'string')
          throw new UsageError('not an authorization_confirmation_request');
        const jwks = (await serviceDocument(new URL(raw.confirmation_endpoint).origin))[
          'server_jwks'
        ] as ServerJwks;
        const request = await wallet.verifyRequest(raw, jwks);
        const only = str(values['scopes'])?.split(/\s+/).filter(Boolean);
        const answer = await wallet.confirm(request, {
          approve: values['approve'] === true,
          ...(only ? { scopes: only } : {}),
        });
        print(
          ctx,
          values,
          answer,
          `${answer.approved ? 'approved' : 'denied'}: ${answer.approved_scopes.join(' ') || '(nothing)'} for ${request.client_info.name}`,
        );
        return EXIT.OK;
      }
      case 'show': {
        const wallet = await loadWallet(ctx);
        print(
          ctx,
          values,
          { user_did: wallet.userDid || null, kid: wallet.kid, public_jwk: wallet.publicJwk },
          `user_did: ${wallet.userDid || '(not enrolled)'}\nkid: ${wallet.kid}`,
        );
        return EXIT.OK;
      }
      default:
        throw new UsageError(
          `ath user: unknown subcommand "${sub ?? ''}" (init, enrol, authorize, confirm, show)`,
        );
    }
  },
};

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}
