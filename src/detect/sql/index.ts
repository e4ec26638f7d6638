/**
 * SQL guard for tools that run model-written SQL: only a single read-only SELECT over
 * allow-listed tables and columns, no comments or dangerous functions, with a row LIMIT
 * enforced (added or lowered). Parsing uses node-sql-parser; anything it cannot parse is refused.
 */
import { createRequire } from 'node:module';
import type sqlParserType from 'node-sql-parser';
import type { Finding, Severity } from '../types.js';


/** SQL dialects the guard understands. */
export type SqlDialect = 'postgresql' | 'mysql' | 'mariadb' | 'sqlite' | 'bigquery' | 'tsql' | 'snowflake' | 'redshift' | 'trino';

/** The policy of one SQL tool. */
export interface SqlPolicy {
  /** Dialect of the target database. Default 'postgresql'. */
  dialect?: SqlDialect;
  /** Tables the query may touch (`table`, or `schema.table` for qualified references); case-insensitive. */
  allowedTables: string[];
  /** Per-table column allow-lists; tables not listed here allow all columns (and `*`). */
  allowedColumns?: Record<string, string[]>;
  /** Maximum rows; a missing LIMIT is added and a larger one lowered. */
  maxLimit: number;
  /** Whether INSERT/UPDATE/DELETE may run: false (refused, default), true, or 'approval' (held for a human). */
  allowWrites?: boolean | 'approval';
  /** Whether SQL comments are tolerated. Default false (comments are a common truncation trick). */
  allowComments?: boolean;
  /** Extra function names to refuse, in addition to the built-in list. */
  deniedFunctions?: string[];
}

/** The verdict of {@link checkSql}. */
export interface SqlCheckResult {
  /** Whether the SQL may run as is (or as `rewritten`). */
  ok: boolean;
  findings: Finding[];
  /** The SQL with the LIMIT enforced, when it had to change. */
  rewritten?: string;
  /** A write allowed only after human approval. */
  requiresApproval?: boolean;
}

const DIALECTS: Record<SqlDialect, string> = {
  postgresql: 'PostgresQL',
  mysql: 'MySQL',
  mariadb: 'MariaDB',
  sqlite: 'SQLite',
  bigquery: 'BigQuery',
  tsql: 'TransactSQL',
  snowflake: 'Snowflake',
  redshift: 'Redshift',
  trino: 'Trino',
};

/** Functions that sleep, touch files, run commands, open connections or change server state. */
const DENIED_FUNCTIONS = new Set([
  'sleep', 'pg_sleep', 'pg_sleep_for', 'pg_sleep_until', 'benchmark', 'waitfor',
  'load_file', 'pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file', 'lo_import', 'lo_export', 'lo_get', 'lo_put',
  'dblink', 'dblink_exec', 'dblink_connect', 'xp_cmdshell', 'sys_exec', 'sys_eval', 'openrowset', 'opendatasource',
  'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'set_config', 'pg_advisory_lock', 'pg_notify',
  'load_extension', 'readfile', 'writefile', 'edit', 'fts3_tokenizer',
  'query_to_xml', 'database_to_xml', 'table_to_xml', 'current_setting', 'inet_server_addr', 'version', 'user', 'current_user', 'system_user', 'session_user',
]);

const WRITE_TYPES = new Set(['insert', 'update', 'delete', 'replace']);
// node-sql-parser holds every dialect's grammar (~28 MB resident): load it when a SQL tool is first checked.
let parserInstance: InstanceType<typeof sqlParserType.Parser> | undefined;
function sqlParser(): InstanceType<typeof sqlParserType.Parser> {
  parserInstance ??= new (createRequire(import.meta.url)('node-sql-parser') as typeof sqlParserType).Parser();
  return parserInstance;
}

function f(category: string, severity: Severity, reason: string, start = 0, end = 0): Finding {
  return { detector: 'sql.guard', category, severity, score: severity === 'critical' ? 1 : severity === 'high' ? 0.9 : 0.7, start, end, reason };
}

/** Finds comments outside string literals and quoted identifiers; returns their offsets. */
export function findSqlComments(sql: string, dialect: SqlDialect = 'postgresql'): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === '`' || (c === '[' && dialect === 'tsql')) {
      const close = c === '[' ? ']' : c;
      i++;
      while (i < sql.length) {
        if (sql[i] === '\\' && (dialect === 'mysql' || dialect === 'mariadb')) {
          i += 2;
          continue;
        }
        if (sql[i] === close) {
          if (sql[i + 1] === close) {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      i++;
      continue;
    }
    if (c === '$' && dialect === 'postgresql') {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end < 0 ? sql.length : end + tag[0].length;
        continue;
      }
    }
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      out.push([i, end < 0 ? sql.length : end]);
      i = end < 0 ? sql.length : end;
      continue;
    }
    if (c === '#' && (dialect === 'mysql' || dialect === 'mariadb')) {
      const end = sql.indexOf('\n', i);
      out.push([i, end < 0 ? sql.length : end]);
      i = end < 0 ? sql.length : end;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      out.push([i, end < 0 ? sql.length : end + 2]);
      i = end < 0 ? sql.length : end + 2;
      continue;
    }
    i++;
  }
  return out;
}

type Node = Record<string, unknown>;

function functionName(node: Node): string {
  const name = node.name as unknown;
  if (typeof name === 'string') return name;
  if (name && typeof name === 'object') {
    const parts = (name as { name?: Array<{ value?: string }> }).name;
    if (Array.isArray(parts)) return parts.map((p) => p.value ?? '').join('.');
  }
  return '';
}

/** Visits every object in the AST. */
function visit(node: unknown, fn: (n: Node) => void, depth = 0): void {
  if (depth > 200 || node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const x of node) visit(x, fn, depth + 1);
    return;
  }
  fn(node as Node);
  for (const v of Object.values(node as Node)) visit(v, fn, depth + 1);
}

function setLimit(ast: Node, maxLimit: number): boolean {
  let target = ast;
  while (target._next && typeof target._next === 'object') target = target._next as Node;
  const limit = (target.limit ?? (ast.limit as Node | undefined)) as { seperator?: string; value?: Array<{ type: string; value: unknown }> } | undefined | null;
  const num = (v: number) => ({ type: 'number', value: v });
  if (!limit || !Array.isArray(limit.value) || limit.value.length === 0) {
    target.limit = { seperator: '', value: [num(maxLimit)] };
    return true;
  }
  const idx = limit.seperator === ',' ? 1 : 0;
  const cur = limit.value[idx];
  if (!cur || cur.type !== 'number' || typeof cur.value !== 'number' || cur.value > maxLimit || cur.value < 0) {
    limit.value[idx] = num(maxLimit);
    return true;
  }
  return false;
}

/**
 * Checks model-written SQL against a tool's policy. Returns ok only for a single SELECT over
 * allowed tables/columns (or an allowed write), with `rewritten` when the LIMIT had to change.
 */
export function checkSql(sql: string, policy: SqlPolicy): SqlCheckResult {
  const dialect = policy.dialect ?? 'postgresql';
  const opt = { database: DIALECTS[dialect] ?? 'PostgresQL' };
  const findings: Finding[] = [];
  if (sql.length > 100_000) return { ok: false, findings: [f('too_long', 'high', 'SQL longer than 100 000 characters')] };

  if (!policy.allowComments) {
    for (const [s, e] of findSqlComments(sql, dialect)) findings.push(f('comment', 'high', 'SQL comment (truncation trick)', s, e));
  }
  const parser = sqlParser();
  let parsed: unknown;
  try {
    parsed = parser.astify(sql, opt);
  } catch {
    return { ok: false, findings: [...findings, f('parse_error', 'high', `SQL does not parse as ${dialect}`, 0, sql.length)] };
  }
  const statements = (Array.isArray(parsed) ? parsed : [parsed]).filter((s) => s && typeof s === 'object') as Node[];
  if (statements.length !== 1) {
    findings.push(f('stacked_queries', 'critical', `${statements.length} statements; only one is allowed`, 0, sql.length));
    return { ok: false, findings };
  }
  const ast = statements[0];
  const type = String(ast.type ?? '').toLowerCase();
  let requiresApproval = false;
  if (type === 'select') {
    if (ast.into && (ast.into as Node).type) findings.push(f('select_into', 'critical', 'SELECT … INTO writes to a file or table', 0, sql.length));
    if (ast.locking_read) findings.push(f('locking_read', 'medium', 'SELECT … FOR UPDATE/SHARE takes locks'));
  } else if (WRITE_TYPES.has(type)) {
    if (policy.allowWrites === 'approval') {
      requiresApproval = true;
      findings.push(f('write_requires_approval', 'medium', `${type.toUpperCase()} requires approval`));
    } else if (policy.allowWrites !== true) {
      findings.push(f('write', 'critical', `${type.toUpperCase()} is not allowed (read-only tool)`, 0, sql.length));
    }
  } else {
    findings.push(f('ddl_or_admin', 'critical', `${type.toUpperCase() || 'this statement'} is not allowed`, 0, sql.length));
    return { ok: false, findings };
  }

  // Functions anywhere in the statement (including subqueries).
  const denied = new Set([...DENIED_FUNCTIONS, ...(policy.deniedFunctions ?? []).map((x) => x.toLowerCase())]);
  const cteNames = new Set<string>();
  visit(ast, (n) => {
    if (n.type === 'function') {
      const name = functionName(n).toLowerCase();
      const base = name.split('.').pop() ?? name;
      if (denied.has(name) || denied.has(base)) findings.push(f('dangerous_function', 'critical', `function ${base} is not allowed`));
    }
    if (Array.isArray(n.with)) {
      for (const w of n.with as Node[]) {
        const nm = (w.name as Node | undefined)?.value ?? w.name;
        if (typeof nm === 'string') cteNames.add(nm.toLowerCase());
      }
    }
  });

  // Tables (subqueries, CTEs, unions included) against the allow-list.
  const allowedTables = new Set(policy.allowedTables.map((t) => t.toLowerCase()));
  const referenced: string[] = [];
  let tables: string[] = [];
  let columns: string[] = [];
  try {
    tables = parser.tableList(sql, opt);
    columns = parser.columnList(sql, opt);
  } catch {
    findings.push(f('parse_error', 'high', 'could not list tables and columns'));
  }
  for (const entry of tables) {
    const [, schema, table] = entry.split('::');
    const t = (table ?? '').toLowerCase();
    const qualified = schema && schema !== 'null' ? `${schema.toLowerCase()}.${t}` : t;
    if ((!schema || schema === 'null') && cteNames.has(t)) continue;
    referenced.push(qualified);
    if (!allowedTables.has(qualified)) findings.push(f('table_not_allowed', 'critical', `table ${qualified.length > 64 ? qualified.slice(0, 64) : qualified} is not on the allow-list`));
  }
  if (referenced.length === 0 && type === 'select' && tables.length === 0 && /\bfrom\b/i.test(sql) && !/\bfrom\s*\(/i.test(sql)) {
    // A FROM the parser did not turn into a table is suspicious; refuse rather than guess.
    findings.push(f('parse_error', 'high', 'could not resolve the tables of the query'));
  }

  // Columns.
  if (policy.allowedColumns && Object.keys(policy.allowedColumns).length > 0) {
    const cols = new Map(Object.entries(policy.allowedColumns).map(([t, cs]) => [t.toLowerCase(), new Set(cs.map((c) => c.toLowerCase()))]));
    const colsOf = (t: string): Set<string> | undefined => cols.get(t) ?? cols.get(t.split('.').pop() ?? t);
    for (const entry of columns) {
      const [, table, column] = entry.split('::');
      const c = (column ?? '').toLowerCase();
      const star = c === '(.*)' || c === '*';
      const candidates = table && table !== 'null' ? [table.toLowerCase()] : referenced;
      if (star) {
        if (candidates.some((t) => colsOf(t) !== undefined)) findings.push(f('star_not_allowed', 'high', 'SELECT * on a table with a column allow-list'));
        continue;
      }
      const ok = candidates.length === 0 || candidates.some((t) => {
        const set = colsOf(t);
        return set === undefined || set.has(c);
      });
      if (!ok) findings.push(f('column_not_allowed', 'high', `column ${c.slice(0, 64)} is not on the allow-list`));
    }
  }

  let rewritten: string | undefined;
  if (type === 'select' && findings.length === 0) {
    try {
      const max = Math.max(0, Math.floor(policy.maxLimit));
      if (ast._next) {
        // A set operation: a LIMIT on one branch does not bound the others, so wrap the whole query.
        rewritten = `SELECT * FROM (${parser.sqlify(ast as never, opt)}) AS pcl_limited LIMIT ${max}`;
        parser.astify(rewritten, opt);
      } else if (setLimit(ast, max)) {
        rewritten = parser.sqlify(ast as never, opt);
        parser.astify(rewritten, opt); // the rewrite must still parse
      }
    } catch {
      findings.push(f('parse_error', 'high', 'could not enforce the row limit'));
      rewritten = undefined;
    }
  }
  const blocking = findings.filter((x) => x.category !== 'write_requires_approval');
  const result: SqlCheckResult = { ok: blocking.length === 0 && !requiresApproval, findings };
  if (rewritten !== undefined) result.rewritten = rewritten;
  if (requiresApproval && blocking.length === 0) result.requiresApproval = true;
  return result;
}
