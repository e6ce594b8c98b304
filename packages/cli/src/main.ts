import { parseArgs, type ParseArgsConfig } from 'node:util';
import { COMMANDS, type Command } from './commands.js';
import { Context, type Io } from './context.js';
import { EXIT, UsageError, describeError, exitCodeFor } from './errors.js';

export const VERSION = '0.1.0';

const GLOBAL = {
  json: { type: 'boolean', description: 'machine-readable JSON on stdout (errors as JSON on stderr)' },
  help: { type: 'boolean', short: 'h', description: 'show help' },
} as const;

const EXIT_HELP = `Exit codes:
  0  success
  1  unexpected failure
  2  usage error (unknown command or option, missing argument)
  3  not configured (no key, agent_id, server or registration; unusable local file)
  4  refused: the ATH server answered with an ATH error (code printed), e.g. a scope not approved
  5  transport: network failure, timeout, invalid or non-ATH response, server error
  6  not authorized: user denied, agent pending or denied, timed out waiting, state mismatch
  7  no usable token (expired, revoked or none): run \`ath authorize\` again
  8  \`ath call\`: the API answered with a non-2xx status`;

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return `ath ${VERSION} — the ATH (Agent Trust Handshake) command for agent developers

Usage: ath <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  .join('\n')}

Global options:
  --json        machine-readable JSON output
  -h, --help    help for ath or a command (ath <command> --help)
  --version     print the version

Files: $ATH_HOME (default ~/.config/ath): config.json, agent-key.pem, credentials.key and credentials/,
all 0600 in 0700 directories. Credentials are encrypted with ATH_CREDENTIALS_KEY (32 bytes, base64url)
when set, else with credentials.key. Secrets are never printed unless --show-secret is given.

${EXIT_HELP}
`;
}

function commandHelp(name: string, command: Command): string {
  const options = { ...command.options, ...GLOBAL } as Record<string, { type: string; short?: string; description: string; value?: string }>;
  const lines = Object.entries(options).map(([opt, spec]) => {
    const left = `${spec.short ? `-${spec.short}, ` : '    '}--${opt}${spec.type === 'string' ? ` <${spec.value ?? 'value'}>` : ''}`;
    return `  ${left.padEnd(34)} ${spec.description}`;
  });
  return `ath ${name} — ${command.summary}

Usage: ${command.usage}
${command.description ? `\n${command.description}\n` : ''}
Options:
${lines.join('\n')}

${EXIT_HELP}
`;
}

/** Runs `ath` with the given arguments; returns the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    const cmd = topic ? COMMANDS[topic] : undefined;
    io.stdout(cmd ? commandHelp(topic!, cmd) : topHelp());
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (name === '--version' || name === '-v') {
    io.stdout(`${VERSION}\n`);
    return EXIT.OK;
  }
  const json = rest.includes('--json');
  const fail = (err: unknown): number => {
    const d = describeError(err);
    if (json) io.stderr(`${JSON.stringify({ error: d.json })}\n`);
    else io.stderr(`ath ${name}: error: ${d.message}\n${d.hint ? `hint: ${d.hint}\n` : ''}`);
    return exitCodeFor(err);
  };
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) return fail(new UsageError(`unknown command "${name}"`));
  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  try {
    const options = Object.fromEntries(
      Object.entries({ ...command.options, ...GLOBAL }).map(([k, spec]) => [
        k,
        { type: spec.type, ...('short' in spec && spec.short ? { short: spec.short } : {}), ...('multiple' in spec && spec.multiple ? { multiple: true } : {}) },
      ]),
    ) as ParseArgsConfig['options'];
    const result = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    parsed = { values: result.values, positionals: result.positionals };
  } catch (err) {
    return fail(new UsageError(err instanceof Error ? err.message : String(err)));
  }
  if (parsed.values['help']) {
    io.stdout(commandHelp(name, command));
    return EXIT.OK;
  }
  try {
    const ctx = new Context(io);
    await ctx.load();
    return await command.run(ctx, parsed.values, parsed.positionals);
  } catch (err) {
    return fail(err);
  }
}
