/**
 * Optional Cedar policies, evaluated in-process with @cedar-policy/cedar-wasm after the
 * built-in scope checks. Request shape:
 *   principal: Portcullis::Key::"<key id or subject>"  (attrs: tenant, tenantId, tier, subject, authMethod;
 *              parent Portcullis::Tenant::"<tenant name>")
 *   action:    Portcullis::Action::"<operation>"
 *   resource:  Portcullis::Model::"<model>"  (Portcullis::Model::"*" when the operation has none)
 *   context:   { tools: [String], maxOutputTokens: Long (0 = not set), dataBoundary: String, …request.context }
 * Cedar denies by default: without a matching `permit`, the request is refused.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as cedarTypes from '@cedar-policy/cedar-wasm/nodejs';
import type { Principal } from '../identity/types.js';
import type { AuthzRequest } from './engine.js';

/** Result of a Cedar evaluation. */
export interface CedarResult {
  decision: 'allow' | 'deny';
  /** Determining policy ids or the error. */
  detail: string;
  error?: boolean;
}

/** A loaded Cedar policy set. */
export interface CedarEvaluator {
  evaluate(p: Principal, req: AuthzRequest, extra: { tier: string | undefined; dataBoundary: string | undefined }): CedarResult;
}

let seq = 0;

// The Cedar engine is a ~12 MB WebAssembly module: instantiated only when Cedar policies are configured.
let cedarModule: typeof cedarTypes | undefined;
function cedarWasm(): typeof cedarTypes {
  cedarModule ??= createRequire(import.meta.url)('@cedar-policy/cedar-wasm/nodejs') as typeof cedarTypes;
  return cedarModule;
}

/** Parses Cedar policies (text) and optional entities; throws with Cedar's messages when invalid. */
export function createCedarEvaluator(policiesText: string, entities: cedarTypes.EntityJson[] = []): CedarEvaluator {
  const cedar = cedarWasm();
  const id = `portcullis-${process.pid}-${++seq}`;
  // Name each policy by its @id("…") annotation (Cedar would call them policy0, policy1, …).
  const parts = cedar.policySetTextToParts(policiesText);
  if (parts.type !== 'success') throw new Error(`invalid Cedar policies: ${parts.errors.map((e) => e.message).join('; ')}`);
  if (parts.policy_templates.length) throw new Error('Cedar policy templates are not supported; use static policies');
  const named: Record<string, string> = {};
  parts.policies.forEach((text, i) => {
    const m = /@id\(\s*"((?:[^"\\]|\\.)*)"\s*\)/.exec(text);
    const pid = m ? m[1]! : `policy${i}`;
    if (named[pid] !== undefined) throw new Error(`invalid Cedar policies: duplicate @id("${pid}")`);
    named[pid] = text;
  });
  const parsed = cedar.preparsePolicySet(id, { staticPolicies: named });
  if (parsed.type !== 'success') throw new Error(`invalid Cedar policies: ${parsed.errors.map((e) => e.message).join('; ')}`);
  return {
    evaluate(p, req, extra) {
      const principal = { type: 'Portcullis::Key', id: p.keyId ?? p.subject };
      const ctx: Record<string, cedarTypes.CedarValueJson> = {
        tools: req.tools ?? [],
        maxOutputTokens: req.maxOutputTokens ?? 0,
        dataBoundary: extra.dataBoundary ?? '',
        ...(req.context ?? {}),
      };
      const answer = cedar.statefulIsAuthorized({
        principal,
        action: { type: 'Portcullis::Action', id: req.operation },
        resource: { type: 'Portcullis::Model', id: req.model ?? '*' },
        context: ctx,
        preparsedPolicySetId: id,
        entities: [
          {
            uid: principal,
            attrs: { tenant: p.tenantName, tenantId: p.tenantId, tier: extra.tier ?? '', subject: p.subject, authMethod: p.authMethod },
            parents: [{ type: 'Portcullis::Tenant', id: p.tenantName }],
          },
          { uid: { type: 'Portcullis::Tenant', id: p.tenantName }, attrs: { id: p.tenantId }, parents: [] },
          ...entities,
        ],
      });
      if (answer.type !== 'success') return { decision: 'deny', error: true, detail: answer.errors.map((e) => e.message).join('; ') };
      const r = answer.response;
      if (r.diagnostics.errors.length) {
        const errs = r.diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`).join('; ');
        if (r.decision === 'deny') return { decision: 'deny', detail: `policies ${r.diagnostics.reason.join(',') || '(none)'}; errors: ${errs}` };
      }
      return { decision: r.decision, detail: r.diagnostics.reason.length ? `policies ${r.diagnostics.reason.join(',')}` : 'no permit matched' };
    },
  };
}

/** Loads Cedar policies (and optional entities JSON) from files. */
export function loadCedarFiles(policiesFile: string, entitiesFile?: string): CedarEvaluator {
  const text = readFileSync(policiesFile, 'utf8');
  const ents = entitiesFile ? (JSON.parse(readFileSync(entitiesFile, 'utf8')) as cedarTypes.EntityJson[]) : [];
  if (!Array.isArray(ents)) throw new Error(`${entitiesFile}: expected a JSON array of Cedar entities`);
  return createCedarEvaluator(text, ents);
}
