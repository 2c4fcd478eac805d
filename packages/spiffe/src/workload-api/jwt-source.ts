import { BundleError } from '../errors/index.js';
import type { TrustDomain } from '../id/index.js';
import type { JwtBundleSource } from '../bundle/source.js';
import type { JwtBundle } from '../bundle/jwt-bundle.js';
import type { JwtBundleSet } from '../bundle/bundle-set.js';
import type { JwtSvid } from '../svid/jwt-svid.js';
import type { JwtSvidParams } from './client.js';
import { WatchedSource, type SourceOptions } from './watched-source.js';

/**
 * The live JWT bundles from the Workload API, and JWT-SVIDs fetched on
 * demand (go-spiffe's `workloadapi.JWTSource`).
 *
 * @example
 * ```ts
 * const source = await JwtSource.create();
 * const svid = await source.fetchJwtSvid({ audience: 'spiffe://example.org/api' });
 * JwtSvid.parseAndValidate(peerToken, source, 'spiffe://example.org/me');
 * ```
 */
export class JwtSource extends WatchedSource implements JwtBundleSource {
  #bundles: JwtBundleSet | undefined;

  private constructor(options: SourceOptions) {
    super('JwtSource', options);
    this.run((signal) =>
      this.client.watchJwtBundles(
        {
          onJwtBundlesUpdate: (b) => {
            this.#bundles = b;
            this.markUpdated();
          },
          onJwtBundlesWatchError: (e) => this.reportError(e),
        },
        signal,
      ),
    );
  }

  /** Starts watching and resolves once the first JWT bundles arrived. */
  static create(options: SourceOptions = {}): Promise<JwtSource> {
    return new JwtSource(options).started(options.timeoutMs, options.signal);
  }

  /** The current JWT bundle of `td`. @throws {@link SourceError} when closed; {@link BundleError} `ERR_BUNDLE_NOT_FOUND`. */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    this.check();
    const b = this.#bundles!.get(td);
    if (!b) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `JwtSource has no JWT bundle for trust domain "${td.name}"`);
    return b;
  }

  /** Fetches a JWT-SVID from the agent. @throws {@link SourceError} when closed. */
  async fetchJwtSvid(params: JwtSvidParams, signal?: AbortSignal): Promise<JwtSvid> {
    this.check();
    return this.client.fetchJwtSvid(params, signal);
  }

  /** Fetches one JWT-SVID per identity. */
  async fetchJwtSvids(params: JwtSvidParams, signal?: AbortSignal): Promise<JwtSvid[]> {
    this.check();
    return this.client.fetchJwtSvids(params, signal);
  }
}
