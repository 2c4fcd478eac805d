/**
 * Typed errors of the agent daemon. `code` is stable; `tessera agent run`
 * prints the message on one line and exits 1.
 */
export type AgentErrorCode =
  /** Node attestation was refused by the server (bad/used/expired join token, x509pop certificate not trusted, banned agent). */
  | 'AGENT_ATTESTATION_FAILED'
  /** No server address answered (at first start, when there is no persisted identity to fall back on). */
  | 'AGENT_SERVER_UNREACHABLE'
  /** The server's certificate is not an SVID of the server ID under the bootstrap/persisted bundle. */
  | 'AGENT_SERVER_UNTRUSTED'
  /** The persisted agent state in dataDir cannot be read or parsed. */
  | 'AGENT_STATE_INVALID'
  /** Nothing to attest with: no persisted SVID and no join token / x509pop configured. */
  | 'AGENT_NOT_ATTESTED'
  /** Bootstrap trust bundle, x509pop certificate or key file unreadable or invalid. */
  | 'AGENT_BOOTSTRAP_INVALID'
  /** The Workload API or admin socket could not be served. */
  | 'AGENT_SOCKET_FAILED';

/** An agent failure with a stable {@link AgentErrorCode}. */
export class AgentError extends Error {
  readonly code: AgentErrorCode;

  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
  }
}
