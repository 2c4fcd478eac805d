import { formatSelector, selectorsSubsetOf, type Selector } from './selector.js';
import type { RegistrationEntry } from './entry.js';

/**
 * The parent ID of node alias entries (`entry create -node`): entries whose
 * parent is the server itself and whose selectors are matched against an
 * agent's node selectors.
 */
export function serverId(trustDomain: string): string {
  return `spiffe://${trustDomain}/tessera/server`;
}

/** What the server knows about an attested agent. */
export interface AgentIdentity {
  readonly spiffeId: string;
  /** Selectors produced by node attestation (e.g. `x509pop:subject:cn:node-1`). */
  readonly selectors: readonly Selector[];
}

/**
 * An index of entries by parent ID, rebuilt or patched as entries change, so
 * computing one agent's entitlement costs in proportion to what it receives.
 */
export class EntryIndex {
  readonly #byId = new Map<string, RegistrationEntry>();
  readonly #byParent = new Map<string, Set<string>>();

  constructor(entries: Iterable<RegistrationEntry> = []) {
    for (const e of entries) this.upsert(e);
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): RegistrationEntry | undefined {
    return this.#byId.get(id);
  }

  upsert(e: RegistrationEntry): void {
    this.remove(e.id);
    this.#byId.set(e.id, e);
    let s = this.#byParent.get(e.parentId);
    if (!s) this.#byParent.set(e.parentId, (s = new Set()));
    s.add(e.id);
  }

  remove(id: string): void {
    const old = this.#byId.get(id);
    if (!old) return;
    this.#byId.delete(id);
    const s = this.#byParent.get(old.parentId);
    s?.delete(id);
    if (s && s.size === 0) this.#byParent.delete(old.parentId);
  }

  childrenOf(parentId: string): RegistrationEntry[] {
    const s = this.#byParent.get(parentId);
    return s ? [...s].map((id) => this.#byId.get(id)!) : [];
  }

  /**
   * The entries an agent may receive and sign for, as SPIRE decides it:
   * entries parented to the agent; node alias entries (parented to the
   * server) whose selectors are all among the agent's node selectors, and
   * entries parented to those aliases; then, transitively, entries parented
   * to any entry already included (downstream / nested workloads). Expired
   * entries (expiresAt ≤ now) are left out.
   */
  entitledEntries(agent: AgentIdentity, trustDomain: string, nowSeconds: number): RegistrationEntry[] {
    const nodeSelectors = new Set(agent.selectors.map(formatSelector));
    const live = (e: RegistrationEntry): boolean => e.expiresAt === 0 || e.expiresAt > nowSeconds;
    const out = new Map<string, RegistrationEntry>();
    const queue: string[] = [agent.spiffeId];
    const visitedParents = new Set<string>();
    for (const alias of this.childrenOf(serverId(trustDomain))) {
      if (live(alias) && selectorsSubsetOf(alias.selectors, nodeSelectors)) {
        out.set(alias.id, alias);
        queue.push(alias.spiffeId);
      }
    }
    while (queue.length > 0) {
      const parent = queue.shift()!;
      if (visitedParents.has(parent)) continue;
      visitedParents.add(parent);
      for (const e of this.childrenOf(parent)) {
        if (!live(e) || out.has(e.id)) continue;
        out.set(e.id, e);
        queue.push(e.spiffeId);
      }
    }
    return [...out.values()];
  }
}

/** Workload side (agent): the entries whose selectors are all among the workload's selectors. */
export function matchWorkloadEntries(entries: Iterable<RegistrationEntry>, workloadSelectors: readonly Selector[]): RegistrationEntry[] {
  const set = new Set(workloadSelectors.map(formatSelector));
  const out: RegistrationEntry[] = [];
  for (const e of entries) if (selectorsSubsetOf(e.selectors, set)) out.push(e);
  return out;
}
