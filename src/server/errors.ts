/** Maps any failure to a client-safe OpenAI error envelope; details go to the log only. */
import { GatewayError, errorEnvelope } from '../errors.js';

/** Converts an unknown thrown value into a GatewayError (unknown errors become a generic 500). */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('PCL_BODY_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('PCL_BAD_CONTENT_TYPE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('PCL_BAD_JSON', { message: 'The request body is empty; a JSON object is required.' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new GatewayError('PCL_BAD_JSON');
    case 'ERR_INVALID_URL':
    case 'FST_ERR_BAD_URL':
      return new GatewayError('PCL_INVALID_REQUEST', { message: 'The request URL is malformed.' });
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new GatewayError('PCL_INVALID_REQUEST', { status: e.statusCode, message: 'The request is invalid.', internal: e.message });
  }
  return new GatewayError('PCL_INTERNAL', { internal: err });
}

export { errorEnvelope };
