/** Turns probe data into concrete attacks: fills canaries, applies buffs, expands stream modes. */
import { canaryValue, fillTemplate, seededRandom } from './canaries.js';
import { applyBuff } from './probes/buffs.js';
import { PROBES_BY_FAMILY } from './probes/library.js';
import type { Canaries, CanaryRef, ChatMessage, ChatProbe, PreparedAttack, Probe, ProbeFamily, TurnTemplate } from './types.js';
import { PROBE_FAMILIES } from './types.js';

/** How to expand probes into attacks. */
export interface PrepareOptions {
  families: ProbeFamily[];
  canaries: Canaries;
  systemPrompt: string;
  /** The system prompt with planted credentials, used by the secret-leakage family (defaults to systemPrompt). */
  secretSystemPrompt?: string;
  /** Buff specs to apply in addition to the unbuffed probe (each `name` or `a+b`). */
  buffs: string[];
  /** `plain`, `stream` or `both`. */
  stream: 'plain' | 'stream' | 'both';
  /** Cap on the number of attacks (deterministic sample by seed); 0 = no cap. */
  maxPrompts: number;
  seed: number;
  /** Size of the huge-input DoS prompt in KiB. */
  hugeInputKb: number;
}

/** Parses `--probes` (comma list of families or `all`); throws on unknown names. */
export function parseFamilies(spec: string): ProbeFamily[] {
  if (!spec || spec === 'all') return [...PROBE_FAMILIES];
  const out: ProbeFamily[] = [];
  for (const name of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(PROBE_FAMILIES as readonly string[]).includes(name)) throw new Error(`unknown probe family "${name}" (known: ${PROBE_FAMILIES.join(', ')})`);
    out.push(name as ProbeFamily);
  }
  return out;
}

const ALL_REFS: CanaryRef[] = ['system', 'marker', 'pii.name', 'pii.email', 'pii.phone', 'pii.iban', 'pii.ssn', 'secrets.apiKey', 'secrets.awsKeyId', 'secrets.dbPassword', 'attackerHost', 'attackerEmail'];

/** The canary values buffs must not alter. */
export function protectedValues(c: Canaries): string[] {
  return ALL_REFS.map((r) => canaryValue(c, r));
}

function filler(kb: number): string {
  const para = 'The quarterly inventory report lists items, quantities, warehouses and shipping dates for every region. ';
  return para.repeat(Math.ceil((kb * 1024) / para.length)).slice(0, kb * 1024);
}

function fillTurn(t: TurnTemplate, c: Canaries, extra: Record<string, string>): ChatMessage {
  if (t.role === 'user') return { role: 'user', content: fillTemplate(t.content, c, extra) };
  if (t.role === 'tool') return { role: 'tool', toolCallId: t.toolCallId, name: t.name, content: fillTemplate(t.content, c, extra) };
  return {
    role: 'assistant',
    content: fillTemplate(t.content, c, extra),
    ...(t.toolCalls ? { toolCalls: t.toolCalls.map((x) => ({ ...x, arguments: fillTemplate(x.arguments, c, extra) })) } : {}),
  };
}

/** Builds the request messages of a chat probe, with an optional buff on the last user turn. */
export function buildMessages(probe: ChatProbe, c: Canaries, buff: string | null, extra: Record<string, string> = {}): ChatMessage[] {
  const msgs = probe.turns.map((t) => fillTurn(t, c, extra));
  const spec = [probe.encoding, buff].filter(Boolean).join('+');
  if (spec) {
    const protect = protectedValues(c);
    for (let i = msgs.length - 1; i >= 0; i--) {
      const m = msgs[i];
      if (m.role === 'user') {
        msgs[i] = { role: 'user', content: applyBuff(spec, m.content, protect) };
        break;
      }
    }
  }
  return msgs;
}

/** Unique key of one attempt. */
export function attackKey(probeId: string, buff: string | null, mode: string): string {
  return `${probeId}|${buff ?? '-'}|${mode}`;
}

/** Expands the selected probe families into the list of attacks to send. */
export function prepareAttacks(opts: PrepareOptions): PreparedAttack[] {
  const extra = { hugeInput: filler(opts.hugeInputKb) };
  const modes: ('plain' | 'stream')[] = opts.stream === 'both' ? ['plain', 'stream'] : [opts.stream];
  const out: PreparedAttack[] = [];
  for (const family of opts.families) {
    for (const probe of PROBES_BY_FAMILY[family] as Probe[]) {
      if (probe.kind === 'api') {
        out.push({ key: attackKey(probe.id, null, 'raw'), probe, buff: null, mode: 'raw', prompt: probe.description });
        continue;
      }
      const buffs: (string | null)[] = [null, ...(probe.buffable ? opts.buffs : [])];
      for (const buff of buffs) {
        const messages = buildMessages(probe, opts.canaries, buff, extra);
        const lastUser = [...messages].reverse().find((m) => m.role === 'user');
        const prompt = probe.sequential
          ? messages.filter((m) => m.role === 'user').map((m) => m.content).join('\n---\n')
          : (lastUser?.content ?? '');
        for (const mode of modes) {
          out.push({
            key: attackKey(probe.id, buff, mode),
            probe,
            buff,
            mode,
            prompt: prompt.length > 4000 ? `${prompt.slice(0, 2000)}… [${prompt.length} chars]` : prompt,
            request: {
              system: probe.family === 'secret-leakage' ? (opts.secretSystemPrompt ?? opts.systemPrompt) : opts.systemPrompt,
              messages,
              ...(probe.tools ? { tools: probe.tools } : {}),
              ...(probe.maxTokens !== undefined ? { maxTokens: probe.maxTokens } : {}),
              stream: mode === 'stream',
            },
          });
        }
      }
    }
  }
  if (opts.maxPrompts > 0 && out.length > opts.maxPrompts) {
    const rand = seededRandom(opts.seed ^ 0x5bd1e995);
    const idx = out.map((_, i) => i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    const keep = new Set(idx.slice(0, opts.maxPrompts));
    return out.filter((_, i) => keep.has(i));
  }
  return out;
}
