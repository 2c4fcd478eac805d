import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { DatastoreError } from './errors.js';
import type { SetMatch } from './types.js';

/** A child table holding one set per parent row (e.g. `entry_selectors` of `registered_entries`). */
export interface SetTable {
  /** Child table name. */
  readonly table: string;
  /** Child column referencing the parent's key. */
  readonly parentColumn: string;
  /** Child columns forming one element of the set (`type`, `value`). */
  readonly columns: readonly string[];
}

const MATCHES: readonly SetMatch[] = ['exact', 'subset', 'superset', 'any'];

/**
 * A condition on the parent row `parentKey` (qualified, e.g.
 * `registered_entries.id`) that its set in `child` matches `elements` as
 * `match` says (SPIRE's match modes). Each mode is answered from the
 * child's index on the element columns:
 * - any: some child row is one of the elements;
 * - superset: as many distinct matching child rows as elements;
 * - subset: some child row matches and none lies outside the elements;
 * - exact: superset and subset.
 * @param elements distinct elements, each with one value per column
 * @throws DatastoreError INVALID (empty set, unknown mode)
 */
export function setMatchCondition(parentKey: string, child: SetTable, elements: readonly (readonly string[])[], match: SetMatch, field: string): RawBuilder<SqlBool> {
  if (!MATCHES.includes(match)) throw new DatastoreError('INVALID', `${field}: match must be one of ${MATCHES.join(', ')}, got ${String(match)}`);
  if (elements.length === 0) throw new DatastoreError('INVALID', `${field}: give at least one element to match`);
  const inSet = (alias: string) =>
    sql.join(
      elements.map((el) => sql`(${sql.join(child.columns.map((c, i) => sql`${sql.ref(`${alias}.${c}`)} = ${el[i]}`), sql` and `)})`),
      sql` or `,
    );
  const table = sql.table(child.table);
  const fk = (alias: string) => sql.ref(`${alias}.${child.parentColumn}`);
  const parent = sql.ref(parentKey);
  const any = sql<SqlBool>`${parent} in (select ${fk('m')} from ${table} as m where ${inSet('m')})`;
  const superset = sql<SqlBool>`${parent} in (select ${fk('m')} from ${table} as m where ${inSet('m')} group by ${fk('m')} having count(*) = ${elements.length})`;
  const noneOutside = sql<SqlBool>`not exists (select 1 from ${table} as o where ${fk('o')} = ${parent} and not (${inSet('o')}))`;
  switch (match) {
    case 'any':
      return any;
    case 'superset':
      return superset;
    case 'subset':
      return sql<SqlBool>`(${any} and ${noneOutside})`;
    case 'exact':
      return sql<SqlBool>`(${superset} and ${noneOutside})`;
  }
}
