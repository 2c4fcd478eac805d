/** Registration: entries, selectors and what each agent is entitled to (SPIRE's model). */
export { RegistrationError, type RegistrationErrorCode } from './errors.js';
export { parseSelector, validateSelector, formatSelector, normalizeSelectors, selectorsSubsetOf, type Selector } from './selector.js';
export { validateEntryInput, isDnsName, MAX_TTL_SECONDS, type RegistrationEntry, type EntryInput, type NormalizedEntryInput } from './entry.js';
export { EntryIndex, serverId, matchWorkloadEntries, type AgentIdentity } from './entitlement.js';
