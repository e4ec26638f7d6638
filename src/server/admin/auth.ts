/** Authentication of admin API requests (admin keys), shared by every module that serves admin routes. */
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '../../errors.js';
import { credentialFrom, type Identity } from '../../identity/service.js';
import type { AdminPrincipal } from '../../identity/types.js';

/**
 * The admin behind a request, or throws: 429 with Retry-After when the address or key has too
 * many recent failures, else a generic 401. The failure reason goes to the request log only.
 */
export async function authenticateAdminRequest(identity: Identity, req: FastifyRequest): Promise<AdminPrincipal> {
  const r = await identity.authenticateAdmin(credentialFrom(req.headers), { ip: req.ip });
  if (r.ok) return r.principal;
  if (req.pcl) req.pcl.state.authFailure = r.reason;
  if (r.reason === 'rate_limited') throw new GatewayError('PCL_RATE_LIMITED', { message: 'Too many failed authentication attempts.', headers: { 'retry-after': String(r.retryAfterS ?? 60) } });
  throw new GatewayError('PCL_UNAUTHENTICATED', { message: 'Missing or invalid admin key.' });
}
