/** `ath-conformance validate`: one message against one $def, every violation with its JSON pointer; plus the shipped fixture corpus. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validators, type Violation } from '@athkit/schemas';

export type DefName = keyof typeof validators;

export function isDefName(name: string): name is DefName {
  return Object.prototype.hasOwnProperty.call(validators, name);
}

export interface MessageValidation {
  def: string;
  valid: boolean;
  violations: readonly Violation[];
}

export function validateMessage(def: string, value: unknown): MessageValidation {
  if (!isDefName(def)) throw new Error(`unknown $def ${def}; known: ${Object.keys(validators).join(', ')}`);
  const result = validators[def](value);
  return { def, valid: result.valid, violations: result.valid ? [] : result.violations };
}

/**
 * The example corpus (schemas/ath/0.1/examples: <Def>/valid/*.json, <Def>/invalid/*.json). In the
 * published package it is `examples/` next to dist (copied by scripts/copy-examples.mjs at pack
 * time); in the monorepo the source directory is used directly.
 */
export function examplesDir(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'examples'), join(here, '..', '..', '..', 'schemas', 'ath', '0.1', 'examples')];
  return candidates.find((d) => existsSync(d)) ?? null;
}

export interface ExampleOutcome {
  def: string;
  file: string;
  expectValid: boolean;
  valid: boolean;
}

/** Validates every example; an outcome is wrong when `valid !== expectValid`. */
export function checkExamples(dir = examplesDir()): ExampleOutcome[] {
  if (!dir) throw new Error('example corpus not found');
  const out: ExampleOutcome[] = [];
  for (const def of readdirSync(dir).sort()) {
    if (!isDefName(def)) continue;
    for (const kind of ['valid', 'invalid'] as const) {
      const sub = join(dir, def, kind);
      if (!existsSync(sub)) continue;
      for (const file of readdirSync(sub).filter((f) => f.endsWith('.json')).sort()) {
        const value: unknown = JSON.parse(readFileSync(join(sub, file), 'utf8'));
        out.push({ def, file: `${def}/${kind}/${file}`, expectValid: kind === 'valid', valid: validators[def](value).valid });
      }
    }
  }
  return out;
}
