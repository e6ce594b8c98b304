/**
 * README examples are tests: the first ```js block of a README is written to a scratch `.mjs`
 * file beside the README (so its imports resolve like a user's would in that package), imported
 * with console.log captured, and removed again.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { vi } from 'vitest';

export interface ReadmeExampleOptions {
  /** The fence's language tag (default `js`). */
  lang?: string;
  /** Which block with that tag, from 0 (default 0: the first). */
  index?: number;
  /** Where to write the block (default: a fresh `.readme-example-*.mjs` beside the README). */
  scratch?: string;
  /** Environment variables set while the example runs; the previous values are restored after. */
  env?: Record<string, string>;
  /** Called with the arguments of each console.log as it happens (e.g. to play the user at a printed URL). */
  onLog?: (args: unknown[]) => void;
}

export interface ReadmeExampleResult {
  /** The example's source. */
  code: string;
  /** The arguments of every console.log call, in order. */
  lines: unknown[][];
}

/** The source of a fenced code block of a README; throws when there is none. */
export function readmeExample(
  readmePath: string,
  options: Pick<ReadmeExampleOptions, 'lang' | 'index'> = {},
): string {
  const lang = options.lang ?? 'js';
  const index = options.index ?? 0;
  const fence = new RegExp('```' + lang.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '\\n([\\s\\S]*?)```', 'g');
  const blocks = [...readFileSync(readmePath, 'utf8').matchAll(fence)].map((m) => m[1] ?? '');
  const code = blocks[index];
  if (code === undefined || code.trim() === '')
    throw new Error(`${readmePath} has no \`\`\`${lang} block #${index}`);
  return code;
}

let runs = 0;

/** Runs a README's example as a module and returns what it printed with console.log. */
export async function runReadmeExample(
  readmePath: string,
  options: ReadmeExampleOptions = {},
): Promise<ReadmeExampleResult> {
  const code = readmeExample(readmePath, options);
  const scratch =
    options.scratch ?? join(dirname(readmePath), `.readme-example-${process.pid}-${++runs}.mjs`);
  const saved = Object.entries(options.env ?? {}).map(([name, value]) => {
    const before = process.env[name];
    process.env[name] = value;
    return [name, before] as const;
  });
  const lines: unknown[][] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args);
    options.onLog?.(args);
  });
  try {
    writeFileSync(scratch, code);
    await import(/* @vite-ignore */ scratch);
  } finally {
    spy.mockRestore();
    rmSync(scratch, { force: true });
    for (const [name, before] of saved) {
      if (before === undefined) delete process.env[name];
      else process.env[name] = before;
    }
  }
  return { code, lines };
}
