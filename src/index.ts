/** Portcullis library entry point. */
export { GatewayError } from './errors.js';
