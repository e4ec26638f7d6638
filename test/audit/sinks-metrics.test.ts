/** Audit sink and writer counters on /metrics, read at scrape time from a real gateway. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '../helpers/gateway.js';
import { metricValue } from '../helpers/metrics.js';
import { waitFor } from '../identity/util.js';
import { newEventId } from '../../src/audit/event.js';
import type { AuditModule } from '../../src/audit/module.js';

const TOKEN = 'metrics-' + 'sink-token';
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('metrics: portcullis_audit_sink_events_total{sink,outcome}, portcullis_audit_sink_queued and portcullis_audit_writer_* after known activity', async () => {
  const udp = createSocket('udp4');
  let datagrams = 0;
  udp.on('message', () => datagrams++);
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => udp.close(() => r())));
  const dir = mkdtempSync(join(tmpdir(), 'pcl-sinkmet-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'audit.jsonl');
  const g = await startGateway(
    {
      metrics: { maxLabelValues: 50 },
      audit: {
        adminPollMs: 600_000, // no admin events bridged during the test: counts stay known
        sinks: {
          file: [{ path: file }],
          webhook: [{ url: 'http://127.0.0.1:1/dead', secretEnv: 'WH', maxAttempts: 1, backoffMs: 1, timeoutMs: 500 }],
          syslog: [{ host: '127.0.0.1', port: udp.address().port, protocol: 'udp', format: 'json', maxMessageBytes: 4096 }],
        },
      },
    },
    { env: { PORTCULLIS_METRICS_TOKEN: TOKEN, WH: 'secret' } },
  );
  cleanups.push(() => g.close());
  const audit = g.gw.modules.get('audit') as AuditModule;
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${g.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: `hello ${i}` }] }) });
    assert.equal(r.status, 200);
    await r.text();
  }
  await audit.flush();
  // One event over the syslog sink's maxMessageBytes: sent as a stub, counted as truncated.
  audit.emit({ event: { id: newEventId(), ts: Date.now(), kind: 'request', tenantId: 't', status: 200, model: 'm'.repeat(10_000) } });
  await audit.flush();
  const [hook, syslog, jsonl] = [audit.sinks.find((s) => s.name.startsWith('webhook:'))!, audit.sinks.find((s) => s.name.startsWith('syslog:'))!, audit.sinks.find((s) => s.name.startsWith('file:'))!];
  const settled = (s: typeof hook) => {
    const st = s.stats();
    return st.queued === 0 && st.delivered + st.dropped + st.truncated === 4;
  };
  await waitFor(async () => settled(hook) && settled(syslog) && settled(jsonl) && datagrams === 4, 5000);

  const res = await fetch(`${g.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  const text = await res.text();
  const v = (sink: string, outcome: string) => metricValue(text, 'portcullis_audit_sink_events_total', { sink, outcome });
  assert.equal(v(jsonl.name, 'delivered'), 4);
  assert.equal(v(jsonl.name, 'dropped'), 0);
  assert.equal(v(hook.name, 'dropped'), 4, 'a dead webhook: every event dropped, counted');
  assert.equal(v(hook.name, 'delivered'), 0);
  assert.equal(v(syslog.name, 'truncated'), 1);
  assert.equal(v(syslog.name, 'delivered'), 3);
  assert.match(text, /# TYPE portcullis_audit_sink_queued gauge/);
  assert.equal(metricValue(text, 'portcullis_audit_sink_queued', { sink: hook.name }), 0);
  const w = audit.writer.stats;
  assert.equal(w.written, 4);
  assert.equal(metricValue(text, 'portcullis_audit_writer_written_total', {}), 4);
  for (const n of ['spilled', 'replayed', 'dead_lettered', 'dropped', 'timeouts']) assert.equal(metricValue(text, `portcullis_audit_writer_${n}_total`, {}), 0, n);
  assert.match(text, /^portcullis_audit_writer_queued 0$/m);
  assert.match(text, /^portcullis_audit_writer_store_down 0$/m);

  // Counters stay monotonic and follow the sinks between scrapes.
  audit.emit({ event: { id: newEventId(), ts: Date.now(), kind: 'request', tenantId: 't', status: 200 } });
  await waitFor(async () => hook.stats().dropped === 5, 5000);
  const text2 = await (await fetch(`${g.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  assert.equal(metricValue(text2, 'portcullis_audit_sink_events_total', { sink: hook.name, outcome: 'dropped' }), 5);
});
