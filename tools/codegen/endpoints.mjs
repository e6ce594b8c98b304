import { HEADER } from './format.mjs';

/** The endpoint table and the error code -> HTTP status table as typed constants. */
export function generateEndpoints(schema, endpoints) {
  return `${HEADER}
import type { ATHErrorCode, ATHExtensionErrorCode } from './types.js';

/** The ATH protocol version these schemas describe. */
export const PROTOCOL_VERSION = ${JSON.stringify(endpoints.version)} as const;

/** Every error code: the upstream enum plus our extension codes (checklist AMB-04). */
export type AthErrorCodeName = ATHErrorCode | ATHExtensionErrorCode;

/** HTTP status for each error code (checklist C-201 and AMB-04); the pair never varies. */
export const ERROR_STATUS = ${JSON.stringify(endpoints.errorStatus, null, 2)} as const satisfies Record<AthErrorCodeName, number>;

/** One row of endpoints.json. */
export interface EndpointDefinition {
  readonly method: 'GET' | 'POST' | 'ANY';
  readonly path: string;
  readonly summary: string;
  readonly modes: readonly ('gateway' | 'native')[];
  readonly auth: string;
  readonly request: { readonly contentType: string; readonly schema: string } | null;
  readonly response: { readonly status: number; readonly contentType: string | null; readonly schema: string | null; readonly description?: string };
  readonly alternateResponses?: readonly { readonly status: number; readonly contentType?: string | null; readonly description: string }[];
  readonly errors: readonly { readonly status: number; readonly code: AthErrorCodeName; readonly when: string }[];
}

/** Every ATH endpoint: method, path, request and response $defs, success status, auth style and errors. */
export const ENDPOINTS = ${JSON.stringify(endpoints.endpoints, null, 2)} as const satisfies Record<string, EndpointDefinition>;

/** The name of an endpoint in ENDPOINTS (the keys of the upstream meta.json). */
export type EndpointName = keyof typeof ENDPOINTS;
`;
}
