import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'bin.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ReturnType<typeof spawn>;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout+stderr contain a match. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  done: Promise<RunResult>;
}

/** Starts the built `ath` binary with HOME and ATH_HOME pointing at a temp directory. */
export function start(args: string[], home: string, env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: home, ATH_HOME: join(home, 'ath'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    waiters.forEach((w) => w());
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    waiters.forEach((w) => w());
  });
  const done = new Promise<RunResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitFor(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = pattern.exec(stdout + stderr);
          if (m) resolve(m);
        };
        waiters.push(check);
        check();
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}\nstdout: ${stdout}\nstderr: ${stderr}`)), timeoutMs);
        timer.unref();
        void done.then(() => {
          check();
          reject(new Error(`ath exited before printing ${pattern}\nstdout: ${stdout}\nstderr: ${stderr}`));
        });
      });
    },
  };
}

export function ath(args: string[], home: string, env: Record<string, string> = {}): Promise<RunResult> {
  return start(args, home, env).done;
}
