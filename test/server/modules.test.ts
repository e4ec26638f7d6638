import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { composeSteps, type GatewayModule } from '../../src/server/modules.js';
import type { RequestContext } from '../../src/server/context.js';

function recorder() {
  const errors: Array<{ module: string; msg: string }> = [];
  const logger = { error: (o: { module: string }, msg: string) => errors.push({ module: o.module, msg }) } as unknown as Logger;
  return { errors, logger };
}
const ctx = { requestId: 'req-1' } as unknown as RequestContext;

test('done steps: synchronous steps run in order without a promise; every step runs even after failures', () => {
  const { errors, logger } = recorder();
  const order: string[] = [];
  const mods: GatewayModule[] = [
    { name: 'a', steps: { done: () => void order.push('a') } },
    {
      name: 'b',
      steps: {
        done: () => {
          order.push('b');
          throw new Error('boom');
        },
      },
    },
    { name: 'c', steps: { done: () => void order.push('c') } },
  ];
  const r = composeSteps(mods, logger).done!(ctx);
  assert.equal(r, undefined, 'an all-synchronous chain returns nothing to wait for');
  assert.deepEqual(order, ['a', 'b', 'c']);
  assert.deepEqual(errors, [{ module: 'b', msg: 'module done step failed' }]);
});

test('done steps: an asynchronous step is awaited before the next; a rejection is logged and the chain goes on', async () => {
  const { errors, logger } = recorder();
  const order: string[] = [];
  const mods: GatewayModule[] = [
    { name: 'a', steps: { done: () => void order.push('a') } },
    {
      name: 'slow',
      steps: {
        done: async () => {
          await new Promise((res) => setTimeout(res, 10));
          order.push('slow');
        },
      },
    },
    {
      name: 'rejects',
      steps: {
        done: async () => {
          order.push('rejects');
          throw new Error('no');
        },
      },
    },
    { name: 'd', steps: { done: () => void order.push('d') } },
  ];
  const r = composeSteps(mods, logger).done!(ctx);
  assert.ok(r && typeof (r as Promise<void>).then === 'function');
  assert.deepEqual(order, ['a'], 'the step after an asynchronous one waits for it');
  await r;
  assert.deepEqual(order, ['a', 'slow', 'rejects', 'd']);
  assert.deepEqual(errors, [{ module: 'rejects', msg: 'module done step failed' }]);
});

test('settle steps compose the same way', async () => {
  const { logger } = recorder();
  const order: string[] = [];
  const steps = composeSteps(
    [
      { name: 'x', steps: { settle: async () => void order.push('x') } },
      { name: 'y', steps: { settle: () => void order.push('y') } },
    ],
    logger,
  );
  await steps.settle!(ctx);
  assert.deepEqual(order, ['x', 'y']);
});
