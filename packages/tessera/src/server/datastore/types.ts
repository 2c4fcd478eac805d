/**
 * The rows the datastore keeps, in SPIRE's model. Timestamps are whole epoch
 * seconds everywhere (like the registration layer and SPIRE's API).
 * `RegistrationEntry` and `Selector` have the same shape as the registration
 * layer's types of the same name, so entries flow between them unchanged.
 */

/** A selector in SPIRE's `type:value` form, e.g. `{ type: 'k8s', value: 'ns:backend' }`. */
export interface Selector {
  readonly type: string;
  readonly value: string;
}

/**
 * How a selector (or trust domain) set given in a filter is compared with a
 * row's set — SPIRE's `MATCH_EXACT`, `MATCH_SUBSET`, `MATCH_SUPERSET`, `MATCH_ANY`:
 * - `exact`: the row's set equals the given set;
 * - `subset`: the row's set is a (non-empty) subset of the given set — what workload attestation asks;
 * - `superset`: the row's set contains every given element;
 * - `any`: the row's set shares at least one element with the given set.
 */
export type SetMatch = 'exact' | 'subset' | 'superset' | 'any';

/** A stored registration entry. */
export interface RegistrationEntry {
  /** Server-generated UUID (version 7: time-ordered). */
  readonly id: string;
  readonly spiffeId: string;
  readonly parentId: string;
  /** Sorted by `type:value`, unique. */
  readonly selectors: readonly Selector[];
  /** Seconds; 0 = the server's default. */
  readonly x509SvidTtl: number;
  /** Seconds; 0 = the server's default. */
  readonly jwtSvidTtl: number;
  /** Trust domain names, sorted, unique. */
  readonly federatesWith: readonly string[];
  /** In the order given (the first is the certificate's CN in SPIRE), unique. */
  readonly dnsNames: readonly string[];
  readonly admin: boolean;
  readonly downstream: boolean;
  readonly hint: string;
  /** Epoch seconds after which the entry is no longer served; 0 = never (SPIRE's convention). */
  readonly expiresAt: number;
  /** 0 at creation, incremented by every update. */
  readonly revisionNumber: number;
  /** Epoch seconds. */
  readonly createdAt: number;
}

/** What a caller sets when creating an entry; omitted fields take their zero value. */
export interface EntryInput {
  spiffeId: string;
  parentId: string;
  selectors: readonly Selector[];
  x509SvidTtl?: number;
  jwtSvidTtl?: number;
  federatesWith?: readonly string[];
  dnsNames?: readonly string[];
  admin?: boolean;
  downstream?: boolean;
  hint?: string;
  /** Epoch seconds; 0, null or omitted = never. */
  expiresAt?: number | null;
}

/** A field of an entry that an update may change (SPIRE's `EntryMask`). */
export type EntryField = keyof EntryInput;

/** Options of `updateEntry`. */
export interface UpdateEntryOptions {
  /**
   * Fields to take from the changes; every one must be present there.
   * Without a mask, every field present in the changes is applied.
   */
  mask?: readonly EntryField[];
  /** When given, the update fails with CONFLICT unless the stored revision number is this. */
  expectedRevision?: number;
}

/** A filter of `listEntries`/`countEntries`; all given conditions must hold. */
export interface EntryFilter {
  spiffeId?: string;
  parentId?: string;
  selectors?: { selectors: readonly Selector[]; match: SetMatch };
  federatesWith?: { trustDomains: readonly string[]; match: SetMatch };
  hint?: string;
  downstream?: boolean;
}

/** Asks for one page of a listing. */
export interface PageRequest {
  /** At most this many items (1–10000); omitted = everything. */
  pageSize?: number;
  /** The `nextPageToken` of the previous page. */
  pageToken?: string;
}

/** One page of a listing. */
export interface Page<T> {
  readonly items: T[];
  /** Present when more items may follow; pass it back to get them. */
  readonly nextPageToken?: string;
}

/** An agent the server has attested (SPIRE's attested node). */
export interface AttestedAgent {
  readonly spiffeId: string;
  /** The node attestor that admitted it, e.g. `join_token`, `x509pop`. */
  readonly attestationType: string;
  /** Serial number of the agent's current SVID ('' when none, e.g. banned). */
  readonly certSerial: string;
  /** Epoch seconds. */
  readonly certExpiresAt: number;
  /** Serial of an SVID issued during renewal but not yet used by the agent ('' when none). */
  readonly newCertSerial: string;
  /** Epoch seconds; 0 when none. */
  readonly newCertExpiresAt: number;
  readonly banned: boolean;
  /** Whether the agent may attest again with the same identity (SPIRE's `can_reattest`). */
  readonly canReattest: boolean;
  /** Node selectors from attestation and resolvers; sorted, unique. */
  readonly selectors: readonly Selector[];
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** What a caller sets when creating an attested agent. */
export interface AgentInput {
  spiffeId: string;
  attestationType: string;
  certSerial: string;
  certExpiresAt: number;
  newCertSerial?: string;
  newCertExpiresAt?: number;
  banned?: boolean;
  canReattest?: boolean;
  selectors?: readonly Selector[];
}

/** Fields of an agent an update may change. */
export type AgentUpdate = Partial<Omit<AgentInput, 'spiffeId'>>;

/** A filter of `listAgents`/`countAgents`. */
export interface AgentFilter {
  attestationType?: string;
  banned?: boolean;
  canReattest?: boolean;
  /** Agents whose current SVID expires before this (epoch seconds). */
  expiresBefore?: number;
  selectors?: { selectors: readonly Selector[]; match: SetMatch };
}

/** A one-time join token. */
export interface JoinToken {
  readonly token: string;
  /** Epoch seconds; the token is expired from this second on. */
  readonly expiresAt: number;
  /** Optional SPIFFE ID alias for the agent that uses it (SPIRE's `-spiffeID` on `token generate`). */
  readonly spiffeId?: string;
}

/** A trust domain's bundle as stored: SPIFFE bundle JSON text and a sequence number. */
export interface StoredBundle {
  readonly trustDomain: string;
  /** SPIFFE bundle (JWKS) JSON, exactly as set. */
  readonly bundle: string;
  /** 1 when first set, incremented by every `setBundle`. */
  readonly sequence: number;
  readonly updatedAt: number;
}

/**
 * What `deleteBundle` does with entries that federate with the trust domain
 * (SPIRE's DeleteBundle modes): refuse (`restrict`, the default), delete them,
 * or remove the trust domain from their `federatesWith` (`dissociate`).
 */
export type DeleteBundleMode = 'restrict' | 'delete' | 'dissociate';

/** How the server authenticates a federated trust domain's bundle endpoint. */
export type BundleEndpointProfile = 'https_web' | 'https_spiffe';

/** A federation relationship with another trust domain. */
export interface FederationRelationship {
  readonly trustDomain: string;
  readonly bundleEndpointUrl: string;
  readonly profile: BundleEndpointProfile;
  /** The endpoint server's SPIFFE ID (`https_spiffe`); '' for `https_web`. */
  readonly endpointSpiffeId: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** What a caller sets when creating a federation relationship. */
export interface FederationRelationshipInput {
  trustDomain: string;
  bundleEndpointUrl: string;
  profile: BundleEndpointProfile;
  endpointSpiffeId?: string;
}

/** The kinds of row the change feed reports. */
export type ChangeKind = 'entry' | 'agent' | 'bundle' | 'federation_relationship';

/** One committed mutation. */
export interface Change {
  /** Monotonic across every server sharing the database. */
  readonly revision: number;
  readonly kind: ChangeKind;
  /** Entry ID, agent SPIFFE ID, or trust domain name. */
  readonly key: string;
  readonly op: 'create' | 'update' | 'delete';
  /** Epoch seconds of the commit (the writer's clock). */
  readonly at: number;
}

/**
 * Changes up to `revision` were pruned before this watcher saw them: reload
 * the state it mirrors. Changes after `revision` follow as usual.
 */
export interface ResyncEvent {
  readonly kind: 'resync';
  readonly revision: number;
}

/** What a watcher receives, in revision order. */
export type ChangeEvent = Change | ResyncEvent;

/** Receives change events; exceptions it throws are reported through `onError` and ignored. */
export type ChangeListener = (event: ChangeEvent) => void;

/** A registered watcher. */
export interface Watch {
  /** Stops delivery. */
  close(): void;
}

/** How much of the change log to keep (the union of both limits is kept). */
export interface ChangeRetention {
  /** Keep at least the newest this-many changes (default 10000). */
  keep?: number;
  /** Keep at least the changes of the last this-many seconds (default 3600). */
  maxAgeSeconds?: number;
}
