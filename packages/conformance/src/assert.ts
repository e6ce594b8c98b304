/** A scenario outcome other than PASS, thrown from inside a scenario. */
export class Failure extends Error {
  override readonly name = 'Failure';
}

/** The scenario cannot run with what this profile/target offers; `message` is the reason. */
export class Skip extends Error {
  override readonly name = 'Skip';
}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Failure(message);
}

export function skip(reason: string): never {
  throw new Skip(reason);
}

export function fail(message: string): never {
  throw new Failure(message);
}

/** Short printable form of a value for failure messages. */
export function brief(value: unknown, max = 200): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  if (s === undefined) return 'undefined';
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
