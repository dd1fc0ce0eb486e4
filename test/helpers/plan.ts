// What a query really reads, from EXPLAIN ANALYZE on either engine: the rows its scans produced or
// threw away, summed over the plan. A bounded query reads about what it returns, however big the
// tables are; one that walks a table from its start reads the table.
import type { Knex } from '../../lib/db.js';

interface PlanNode {
  'Node Type': string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

const SCANS = new Set(['Seq Scan', 'Index Scan', 'Index Only Scan', 'Bitmap Heap Scan']);

function touched(node: PlanNode): number {
  const own = SCANS.has(node['Node Type'])
    ? ((node['Actual Rows'] ?? 0) +
        (node['Rows Removed by Filter'] ?? 0) +
        (node['Rows Removed by Index Recheck'] ?? 0)) *
      (node['Actual Loops'] ?? 1)
    : 0;
  return own + (node.Plans ?? []).reduce((a, p) => a + touched(p), 0);
}

/** Table rows read by a query (a builder or raw SQL with `?` bindings). */
export async function rowsRead(
  db: Knex,
  query: Knex.QueryBuilder | Knex.Raw | { sql: string; bindings?: readonly unknown[] },
): Promise<number> {
  const { sql, bindings } = 'toSQL' in query ? query.toSQL() : query;
  const res = await db.raw(`explain (analyze, format json) ${sql}`, (bindings ?? []) as Knex.RawBinding[]);
  const out = res.rows[0]['QUERY PLAN'];
  const plan = (typeof out === 'string' ? JSON.parse(out) : out)[0].Plan as PlanNode;
  return touched(plan);
}
