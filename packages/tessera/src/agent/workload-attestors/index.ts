/**
 * Workload attestation on Linux: who is calling the Workload API socket
 * (SO_PEERCRED) and what selectors describe that process (/proc).
 */
export { WorkloadAttestationError, type WorkloadAttestationErrorCode } from './errors.js';
export { peerCredentials, type PeerCredentials } from './peer-credentials.js';
export { unixAttestor, type UnixAttestorOptions, type WorkloadAttestor } from './unix-attestor.js';
export { linuxProcReader, parseProcStat, parseStartTime, parseStatusIds, type ProcReader, type ProcStat, type StatusIds } from './proc-reader.js';
export { fileUserDatabase, parseGroup, parsePasswd, type UserDatabase } from './user-database.js';
export { executableHasher, type ExecutableHasher, type ExecutableHasherOptions, type ExecutableIdentity } from './executable-hash.js';
