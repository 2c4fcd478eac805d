import type { KeyObject } from 'node:crypto';
import { SpiffeId } from '@tessera/spiffe/id';
import { signJwtSvid } from '@tessera/spiffe/svid';

import type { Selector } from '../../server/registration/index.js';
import { selectorsSubsetOf } from '../../server/registration/index.js';

/** One X509-SVID the agent holds for a registration entry. */
export interface CachedSvid {
  /** The SVID's SPIFFE ID (`spiffe://td/path`). */
  readonly spiffeId: string;
  /** DER chain, leaf first. */
  readonly certificates: readonly Buffer[];
  /** The leaf's private key. */
  readonly privateKey: KeyObject;
  /** Operator hint (the entry's `hint`), '' if none. */
  readonly hint: string;
  /** Trust domains the entry federates with (`td` or `spiffe://td`). */
  readonly federatesWith: readonly string[];
}

/** A trust bundle: X.509 authorities (DER) and the JWT authorities as a JWKS JSON document. */
export interface TrustBundle {
  /** Trust domain name (`example.org`). */
  readonly trustDomain: string;
  readonly x509Authorities: readonly Buffer[];
  /** JWKS JSON (`{"keys":[…]}`); keys without `kid` are not served. */
  readonly jwks: string;
}

/** A minted JWT-SVID. */
export interface MintedJwtSvid {
  readonly token: string;
  readonly expiresAt: Date;
}

/**
 * What the Workload API reads: the agent's cache of SVIDs and bundles.
 * The agent's SVID manager implements it; {@link InMemoryIdentityCache} is for tests.
 */
export interface IdentityCache {
  /** The SVIDs of every entry whose selectors are a subset of `selectors` (the caller's). */
  identitiesFor(selectors: readonly Selector[]): { svids: readonly CachedSvid[] };
  /** The own trust domain's bundle. */
  bundle(): TrustBundle;
  /** Federated bundles keyed by trust domain name (`other.org`). */
  federatedBundles(): ReadonlyMap<string, TrustBundle>;
  /** Mints (or returns a cached) JWT-SVID for an identity the agent holds. */
  fetchJwtSvid(spiffeId: string, audience: readonly string[]): Promise<MintedJwtSvid>;
  /** Called after every change (rotation, entry added/removed, bundle change); returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
}

/** A registration entry of {@link InMemoryIdentityCache}. */
export interface InMemoryEntry {
  readonly selectors: readonly Selector[];
  readonly svid: CachedSvid;
}

/** Options of {@link InMemoryIdentityCache}. */
export interface InMemoryIdentityCacheOptions {
  readonly bundle: TrustBundle;
  /** Signs JWT-SVIDs; without it `fetchJwtSvid` fails. */
  readonly jwtSigner?: { readonly key: KeyObject; readonly keyId: string; readonly ttlSeconds?: number };
  readonly now?: () => Date;
}

/** An {@link IdentityCache} held in memory, changed by hand (tests, embedding). */
export class InMemoryIdentityCache implements IdentityCache {
  readonly #entries = new Map<string, InMemoryEntry>();
  readonly #federated = new Map<string, TrustBundle>();
  readonly #listeners = new Set<() => void>();
  readonly #options: InMemoryIdentityCacheOptions;
  #bundle: TrustBundle;

  constructor(options: InMemoryIdentityCacheOptions) {
    this.#options = options;
    this.#bundle = options.bundle;
  }

  /** Adds or replaces (rotates) the entry `id`. */
  setEntry(id: string, entry: InMemoryEntry): void {
    this.#entries.set(id, entry);
    this.#changed();
  }

  removeEntry(id: string): void {
    if (this.#entries.delete(id)) this.#changed();
  }

  setBundle(bundle: TrustBundle): void {
    this.#bundle = bundle;
    this.#changed();
  }

  /** Sets (or with `undefined` removes) the bundle of a federated trust domain. */
  setFederatedBundle(trustDomain: string, bundle: TrustBundle | undefined): void {
    if (bundle === undefined) this.#federated.delete(trustDomain);
    else this.#federated.set(trustDomain, bundle);
    this.#changed();
  }

  identitiesFor(selectors: readonly Selector[]): { svids: readonly CachedSvid[] } {
    const svids: CachedSvid[] = [];
    for (const e of this.#entries.values()) {
      if (e.selectors.length > 0 && selectorsSubsetOf(e.selectors, selectors)) svids.push(e.svid);
    }
    return { svids };
  }

  bundle(): TrustBundle {
    return this.#bundle;
  }

  federatedBundles(): ReadonlyMap<string, TrustBundle> {
    return new Map(this.#federated);
  }

  fetchJwtSvid(spiffeId: string, audience: readonly string[]): Promise<MintedJwtSvid> {
    const signer = this.#options.jwtSigner;
    if (signer === undefined) return Promise.reject(new Error('no JWT signing key configured'));
    const now = (this.#options.now ?? (() => new Date()))();
    const expiresAt = new Date(now.getTime() + (signer.ttlSeconds ?? 300) * 1000);
    try {
      const token = signJwtSvid({ id: SpiffeId.parse(spiffeId), audience: [...audience], key: signer.key, keyId: signer.keyId, issuedAt: now, expiresAt });
      return Promise.resolve({ token, expiresAt });
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  onChange(listener: () => void): () => void {
    const l = (): void => listener();
    this.#listeners.add(l);
    return () => {
      this.#listeners.delete(l);
    };
  }

  #changed(): void {
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch {
        // a broken listener must not stop the others
      }
    }
  }
}
