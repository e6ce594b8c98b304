import { canonicalizeTarget, type CanonicalTarget } from './canonical-path.js';

/** The methods a scope map may name. Anything else (OPTIONS, TRACE, CONNECT, PROPFIND, `get`) is never mapped. */
export const MAPPABLE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type MappableMethod = (typeof MAPPABLE_METHODS)[number];

/** One rule of a provider's scope map: `{ methods, path } → scope`. */
export interface ScopeRule {
  readonly methods: readonly string[];
  /** A path template relative to the provider's `api_base`, e.g. `/v1/messages/{id}`. */
  readonly path: string;
  readonly scope: string;
}

/** A problem in a scope map, located by rule index and field. */
export interface ScopeRuleProblem {
  index: number;
  field: 'methods' | 'path' | 'scope';
  message: string;
}

type Part = { literal: string } | { param: string };

interface CompiledRule {
  methods: ReadonlySet<string>;
  parts: readonly Part[];
  /** 1 per literal segment, 0 per `{param}`: a lexicographically greater vector is more specific. */
  specificity: readonly number[];
  scope: string;
  shape: string;
}

const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

function compileTemplate(path: string): { parts: Part[]; shape: string } {
  if (!path.startsWith('/')) throw new Error('must start with /');
  const raw = path.slice(1).split('/');
  const parts: Part[] = raw.map((segment, i) => {
    const param = PARAM.exec(segment);
    if (param) return { param: param[1]! };
    if (segment.includes('{') || segment.includes('}')) throw new Error('a {parameter} must be a whole segment');
    if (segment === '' && i !== raw.length - 1) throw new Error('empty segment (//)');
    return { literal: segment };
  });
  // Literal segments must themselves be canonical, or no request could ever match them.
  const probe = parts.map((p) => ('param' in p ? 'x' : p.literal)).join('/');
  try {
    canonicalizeTarget('/' + probe);
  } catch (err) {
    const reason = (err as { details?: { reason?: string } }).details?.reason ?? 'not a canonical path';
    throw new Error(reason);
  }
  return { parts, shape: parts.map((p) => ('param' in p ? '{}' : p.literal)).join('/') };
}

/** Checks rules without building a map (used by the config validator to name the bad key). */
export function checkScopeRules(rules: readonly ScopeRule[], availableScopes?: readonly string[]): ScopeRuleProblem[] {
  const problems: ScopeRuleProblem[] = [];
  const seen = new Map<string, { scope: string; index: number }>();
  const offered = availableScopes ? new Set(availableScopes) : null;
  rules.forEach((rule, index) => {
    const bad = rule.methods.filter((m) => !(MAPPABLE_METHODS as readonly string[]).includes(m));
    if (rule.methods.length === 0) problems.push({ index, field: 'methods', message: 'must name at least one method' });
    if (bad.length) {
      problems.push({ index, field: 'methods', message: `unsupported method(s) ${bad.join(', ')}; use ${MAPPABLE_METHODS.join(', ')}` });
    }
    if (offered && !offered.has(rule.scope)) {
      problems.push({ index, field: 'scope', message: `scope ${rule.scope} is not in available_scopes` });
    }
    let shape: string;
    try {
      shape = compileTemplate(rule.path).shape;
    } catch (err) {
      problems.push({ index, field: 'path', message: `invalid path template: ${(err as Error).message}` });
      return;
    }
    for (const method of rule.methods) {
      const key = `${method} ${shape}`;
      const prior = seen.get(key);
      if (prior && prior.scope !== rule.scope) {
        problems.push({
          index,
          field: 'path',
          message: `${method} ${rule.path} is already mapped to ${prior.scope} by rule ${prior.index}`,
        });
      } else if (!prior) seen.set(key, { scope: rule.scope, index });
    }
  });
  return problems;
}

/**
 * A provider's scope map, deny by default (C-158). Matching is segment by segment on the canonical
 * raw path, exactly as written in the map: case-sensitive, a `{param}` is one non-empty segment,
 * a trailing slash is a different path, methods are compared exactly (upper case). When several
 * rules match, the one with literal segments furthest left wins (`/messages/send` over
 * `/messages/{id}`); equally specific rules with different scopes are refused at compile time.
 */
export class ScopeMap {
  private readonly rules: readonly CompiledRule[];

  private constructor(rules: CompiledRule[]) {
    this.rules = rules;
  }

  static compile(rules: readonly ScopeRule[]): ScopeMap {
    const problems = checkScopeRules(rules);
    if (problems.length) {
      throw new Error(problems.map((p) => `scope_map[${p.index}].${p.field}: ${p.message}`).join('; '));
    }
    return new ScopeMap(
      rules.map((rule) => {
        const { parts, shape } = compileTemplate(rule.path);
        return {
          methods: new Set(rule.methods),
          parts,
          specificity: parts.map((p) => ('literal' in p ? 1 : 0)),
          scope: rule.scope,
          shape,
        };
      }),
    );
  }

  /** The scope `method` on `target` needs, or null when no rule maps it (→ 403 SCOPE_NOT_APPROVED in the engine). */
  requiredScope(method: string, target: CanonicalTarget): string | null {
    let best: CompiledRule | null = null;
    for (const rule of this.rules) {
      if (!rule.methods.has(method) || !matches(rule.parts, target.segments)) continue;
      if (!best || moreSpecific(rule.specificity, best.specificity)) best = rule;
    }
    return best?.scope ?? null;
  }
}

function matches(parts: readonly Part[], segments: readonly string[]): boolean {
  if (parts.length !== segments.length) return false;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const segment = segments[i]!;
    if ('literal' in part) {
      if (part.literal !== segment) return false;
    } else if (segment === '') return false;
  }
  return true;
}

function moreSpecific(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return false;
}
