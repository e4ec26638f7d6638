import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSql, findSqlComments, type SqlPolicy } from './index.js';

const policy: SqlPolicy = {
  dialect: 'postgresql',
  allowedTables: ['orders', 'customers', 'public.products'],
  allowedColumns: { customers: ['id', 'name', 'country'] },
  maxLimit: 100,
};
const cats = (sql: string, p: SqlPolicy = policy) => checkSql(sql, p).findings.map((f) => f.category);

test('a valid SELECT passes with LIMIT added', () => {
  const r = checkSql('SELECT id, total FROM orders WHERE total > 10', policy);
  assert.equal(r.ok, true);
  assert.match(r.rewritten!, /LIMIT 100$/);
  assert.deepEqual(r.findings, []);
});

test('a larger LIMIT is lowered, a smaller one kept (also OFFSET and MySQL forms)', () => {
  assert.match(checkSql('SELECT id FROM orders LIMIT 5000', policy).rewritten!, /LIMIT 100$/);
  const small = checkSql('SELECT id FROM orders LIMIT 5', policy);
  assert.equal(small.ok, true);
  assert.equal(small.rewritten, undefined);
  assert.match(checkSql('SELECT id FROM orders LIMIT 1000 OFFSET 20', policy).rewritten!, /LIMIT 100 OFFSET 20/);
  const my = checkSql('SELECT id FROM orders LIMIT 20, 1000', { ...policy, dialect: 'mysql' });
  assert.match(my.rewritten!, /LIMIT 20,\s*100/);
});

test('DROP, DELETE and other writes/DDL are refused', () => {
  assert.deepEqual(cats('DROP TABLE orders'), ['ddl_or_admin']);
  assert.deepEqual(cats('DELETE FROM orders WHERE id = 1').slice(0, 1), ['write']);
  assert.equal(checkSql('UPDATE orders SET total = 0', policy).ok, false);
  assert.equal(checkSql('TRUNCATE orders', policy).ok, false);
  assert.equal(checkSql('GRANT ALL ON orders TO public', policy).ok, false);
});

test('writes require approval when allowWrites is "approval"', () => {
  const r = checkSql('UPDATE orders SET total = 0 WHERE id = 1', { ...policy, allowWrites: 'approval' });
  assert.equal(r.ok, false);
  assert.equal(r.requiresApproval, true);
  const bad = checkSql('UPDATE secrets SET v = 1', { ...policy, allowWrites: 'approval' });
  assert.equal(bad.requiresApproval, undefined);
  assert.equal(checkSql('INSERT INTO orders (id) VALUES (1)', { ...policy, allowWrites: true }).ok, true);
});

test('stacked queries are refused', () => {
  assert.deepEqual(cats('SELECT id FROM orders; DROP TABLE orders'), ['stacked_queries']);
  assert.deepEqual(cats('SELECT 1; SELECT 2'), ['stacked_queries']);
});

test('comment tricks are refused; comment markers inside strings are fine', () => {
  assert.ok(cats("SELECT id FROM orders WHERE name = 'x' -- AND tenant = 7").includes('comment'));
  assert.ok(cats('SELECT id FROM orders /* hi */ WHERE id = 1').includes('comment'));
  assert.ok(cats("SELECT id FROM orders WHERE a = 'x' # and tenant = 7", { ...policy, dialect: 'mysql' }).includes('comment'));
  assert.equal(checkSql("SELECT id FROM orders WHERE note = '-- not a comment /* */'", policy).ok, true);
  assert.deepEqual(findSqlComments("select '--' as a -- real"), [[17, 24]]);
});

test('tables outside the allow-list, including in subqueries, CTEs and unions', () => {
  assert.deepEqual(cats('SELECT * FROM users'), ['table_not_allowed']);
  assert.ok(cats('SELECT id FROM orders WHERE id IN (SELECT order_id FROM payments)').includes('table_not_allowed'));
  assert.ok(cats('WITH x AS (SELECT secret FROM vault) SELECT secret FROM x').includes('table_not_allowed'));
  assert.ok(cats('SELECT id FROM orders UNION SELECT usename FROM pg_catalog.pg_user').includes('table_not_allowed'));
  assert.ok(cats('SELECT id FROM other.products').includes('table_not_allowed'));
  assert.equal(checkSql('WITH big AS (SELECT id FROM orders) SELECT id FROM big', policy).ok, true);
  assert.equal(checkSql('SELECT id FROM public.products', policy).ok, true);
});

test('disallowed columns and * on a table with a column list', () => {
  assert.deepEqual(cats('SELECT id, email FROM customers'), ['column_not_allowed']);
  assert.deepEqual(cats('SELECT * FROM customers'), ['star_not_allowed']);
  assert.deepEqual(cats('SELECT c.ssn FROM customers c'), ['column_not_allowed']);
  assert.equal(checkSql('SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id', policy).ok, true);
  assert.equal(checkSql('SELECT * FROM orders', policy).ok, true);
});

test('dangerous functions', () => {
  assert.ok(cats('SELECT pg_sleep(10)').includes('dangerous_function'));
  assert.ok(cats('SELECT id FROM orders WHERE id = 1 AND SLEEP(5)', { ...policy, dialect: 'mysql' }).includes('dangerous_function'));
  assert.ok(cats("SELECT LOAD_FILE('/etc/passwd')", { ...policy, dialect: 'mysql' }).includes('dangerous_function'));
  assert.ok(cats("SELECT id FROM orders WHERE id = (SELECT pg_read_file('/etc/passwd'))").includes('dangerous_function'));
});

test('SELECT INTO OUTFILE and parse failures are refused', () => {
  assert.ok(cats("SELECT id INTO OUTFILE '/tmp/x' FROM orders", { ...policy, dialect: 'mysql' }).includes('select_into'));
  assert.deepEqual(cats('SELEC id FROM orders'), ['parse_error']);
  assert.equal(checkSql('', policy).ok, false);
});

test('unions are bounded as a whole', () => {
  const r = checkSql('(SELECT id FROM orders) UNION (SELECT id FROM customers)', policy);
  assert.equal(r.ok, true);
  assert.match(r.rewritten!, /^SELECT \* FROM \(.*\) AS pcl_limited LIMIT 100$/);
});
