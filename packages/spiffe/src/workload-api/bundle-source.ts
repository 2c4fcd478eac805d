import { BundleError } from '../errors/index.js';
import type { TrustDomain } from '../id/index.js';
import type { JwtBundleSource, X509BundleSource } from '../bundle/source.js';
import type { JwtBundle } from '../bundle/jwt-bundle.js';
import type { X509Bundle } from '../bundle/x509-bundle.js';
import type { JwtBundleSet, X509BundleSet } from '../bundle/bundle-set.js';
import { WatchedSource, type SourceOptions } from './watched-source.js';

/**
 * The live X.509 and JWT bundles from the Workload API (go-spiffe's
 * `workloadapi.BundleSource`): for verifiers that hold no SVID of their own.
 * Ready once both kinds arrived.
 *
 * @example
 * ```ts
 * const bundles = await BundleSource.create();
 * connectTls({ bundle: bundles, authorize: authorizeId(serverId) }, { host, port });
 * ```
 */
export class BundleSource extends WatchedSource implements X509BundleSource, JwtBundleSource {
  #x509: X509BundleSet | undefined;
  #jwt: JwtBundleSet | undefined;

  private constructor(options: SourceOptions) {
    super('BundleSource', options);
    const updated = (): void => {
      if (this.#x509 && this.#jwt) this.markUpdated();
    };
    this.run((signal) =>
      this.client.watchX509Context(
        {
          onX509ContextUpdate: (c) => {
            this.#x509 = c.bundles;
            updated();
          },
          onX509ContextWatchError: (e) => this.reportError(e),
        },
        signal,
      ),
    );
    this.run((signal) =>
      this.client.watchJwtBundles(
        {
          onJwtBundlesUpdate: (b) => {
            this.#jwt = b;
            updated();
          },
          onJwtBundlesWatchError: (e) => this.reportError(e),
        },
        signal,
      ),
    );
  }

  /** Starts watching and resolves once both X.509 and JWT bundles arrived. */
  static create(options: SourceOptions = {}): Promise<BundleSource> {
    return new BundleSource(options).started(options.timeoutMs, options.signal);
  }

  /** @throws {@link SourceError} when closed; {@link BundleError} `ERR_BUNDLE_NOT_FOUND`. */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    this.check();
    const b = this.#x509!.get(td);
    if (!b) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `BundleSource has no X.509 bundle for trust domain "${td.name}"`);
    return b;
  }

  /** @throws {@link SourceError} when closed; {@link BundleError} `ERR_BUNDLE_NOT_FOUND`. */
  getJwtBundleForTrustDomain(td: TrustDomain): JwtBundle {
    this.check();
    const b = this.#jwt!.get(td);
    if (!b) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `BundleSource has no JWT bundle for trust domain "${td.name}"`);
    return b;
  }
}
