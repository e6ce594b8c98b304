import { randomBytes } from 'node:crypto';
import {
  createQueryId,
  type Compilable,
  type Kysely,
  type QueryResult,
  type RootOperationNode,
} from 'kysely';

interface Template {
  sql: string;
  query: RootOperationNode;
  /** Per compiled parameter: the index of the caller's value, or a constant kysely put there itself. */
  slots: ({ value: number } | { constant: unknown })[];
}

/**
 * Queries compiled once per shape. kysely builds an operation tree and compiles it to SQL on every
 * call, which costs more than SQLite needs to run an indexed statement; the store's hot statements
 * have a fixed shape per call site, so each shape is built once with marker values in place of the
 * caller's values, and later calls only substitute the values for the markers.
 *
 * `key` must name the shape exactly: anything that changes the SQL text (which columns are set,
 * how many items an IN list has, an IS NULL instead of an = ?) belongs in the key.
 */
export class CompiledQueries<DB> {
  readonly #db: Kysely<DB>;
  readonly #templates = new Map<string, Template>();
  /** Unguessable, so no caller value can be mistaken for a marker. */
  readonly #markerPrefix = `\u0000athkit-value-${randomBytes(8).toString('hex')}-`;

  constructor(db: Kysely<DB>) {
    this.#db = db;
  }

  async execute<V extends readonly unknown[], R>(
    key: string,
    values: V,
    build: (db: Kysely<DB>, values: V) => Compilable<R>,
  ): Promise<QueryResult<R>> {
    const template = this.#templates.get(key) ?? this.#compile(key, values.length, build);
    const parameters = template.slots.map((slot) =>
      'value' in slot ? (values[slot.value] ?? null) : slot.constant,
    );
    return this.#db.executeQuery<R>({
      sql: template.sql,
      query: template.query,
      parameters,
      queryId: createQueryId(),
    });
  }

  #compile<V extends readonly unknown[], R>(
    key: string,
    count: number,
    build: (db: Kysely<DB>, values: V) => Compilable<R>,
  ): Template {
    const markers = Array.from({ length: count }, (_, i) => `${this.#markerPrefix}${i}`);
    const compiled = build(this.#db, markers as unknown as V).compile();
    const used = new Set<number>();
    const slots = compiled.parameters.map((p) => {
      if (typeof p === 'string' && p.startsWith(this.#markerPrefix)) {
        const index = Number(p.slice(this.#markerPrefix.length));
        used.add(index);
        return { value: index };
      }
      return { constant: p };
    });
    // A value kysely wrote into the SQL text, or dropped, cannot be substituted later.
    if (compiled.sql.includes(this.#markerPrefix) || used.size !== count) {
      throw new Error(`compiled query "${key}": every value must be a bound parameter`);
    }
    const template = { sql: compiled.sql, query: compiled.query, slots };
    this.#templates.set(key, template);
    return template;
  }
}
