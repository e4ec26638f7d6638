/** Test helper: a real gateway in front of a scripted mock upstream (guards off, audit flushed every 20 ms). */
import type { AuditModule } from '../../src/audit/module.js';
import { startGateway, type TestGateway } from './gateway.js';
import { startMockUpstream, type MockUpstream } from './mock-upstream.js';

/**
 * Starts a mock and a gateway routing every model to it (OpenAI-compatible; `claude-*` over the
 * Anthropic API with `anthropic: true`), with `raw` merged over that config. `cleanups` gets both closes.
 */
export async function gatewayOverMock(raw: Record<string, any>, cleanups: Array<() => void | Promise<void>>, opts: { anthropic?: boolean } = {}): Promise<{ g: TestGateway; mock: MockUpstream }> {
  const mock = await startMockUpstream();
  const g = await startGateway({
    providers: { mock: { type: 'openai', baseUrl: `${mock.url}/v1` }, ...(opts.anthropic ? { claude: { type: 'anthropic', baseUrl: mock.url } } : {}) },
    routes: [...(opts.anthropic ? [{ model: 'claude-*', provider: 'claude' }] : []), { model: '*', provider: 'mock' }],
    guards: { enabled: false },
    audit: { flushIntervalMs: 20 },
    ...raw,
  });
  cleanups.push(() => g.close(), () => mock.close());
  return { g, mock };
}

/** The gateway's audit module. */
export const auditOf = (g: TestGateway) => g.gw.modules.get('audit') as AuditModule;
