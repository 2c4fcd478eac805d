/**
 * Typed errors of endpoint registration (issue 4, "Endpoint registration").
 * `code` is stable; the agent's admin API maps each code to one gRPC status
 * (`agent/api/endpoint-admin.ts`), the CLI prints the message as is.
 */
export type EndpointErrorCode =
  /** A field is malformed (the message names it and the rule it breaks): fix the request. */
  | 'ENDPOINT_INVALID'
  /** An endpoint with this (namespace, name) is already registered: remove it first. */
  | 'ENDPOINT_EXISTS'
  /** No endpoint with this (namespace, name) is registered. */
  | 'ENDPOINT_NOT_FOUND'
  /** The network namespace file cannot be stat'ed (missing, no permission): create the namespace before registering it. */
  | 'ENDPOINT_NETNS_UNREADABLE'
  /** The path exists but is not a namespace file (not on nsfs): give /var/run/netns/<name> or /proc/<pid>/ns/net. */
  | 'ENDPOINT_NETNS_NOT_NAMESPACE'
  /** Another registered endpoint already names this network namespace: one namespace is one endpoint. */
  | 'ENDPOINT_NETNS_IN_USE'
  /** The namespace is the agent's own (the host's): every host process would get the endpoint's selectors. */
  | 'ENDPOINT_NETNS_HOST'
  /** The registry file exists but is not a registry this agent wrote: repair or remove it (the agent does not start over silently). */
  | 'ENDPOINT_STORE_CORRUPT'
  /** The registry file could not be written (disk full, permissions); the change was not made. */
  | 'ENDPOINT_STORE_FAILED';

/**
 * An endpoint registration failure with a stable {@link EndpointErrorCode}.
 *
 * @example
 * ```ts
 * try { await registry.add(spec); } catch (e) {
 *   if (e instanceof EndpointError && e.code === 'ENDPOINT_EXISTS') { ... }
 * }
 * ```
 */
export class EndpointError extends Error {
  readonly code: EndpointErrorCode;
  /** The request field at fault, for ENDPOINT_INVALID (e.g. `labels["app"]`). */
  readonly field: string | undefined;

  constructor(code: EndpointErrorCode, message: string, options?: { cause?: unknown; field?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EndpointError';
    this.code = code;
    this.field = options?.field;
  }
}

/** ENDPOINT_INVALID naming `field`: `invalid <field>: <reason>`. */
export function invalidField(field: string, reason: string): EndpointError {
  return new EndpointError('ENDPOINT_INVALID', `invalid ${field}: ${reason}`, { field });
}
