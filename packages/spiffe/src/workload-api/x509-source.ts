import { BundleError, OptionsError } from '../errors/index.js';
import type { TrustDomain } from '../id/index.js';
import type { X509BundleSource } from '../bundle/source.js';
import type { X509Bundle } from '../bundle/x509-bundle.js';
import type { X509BundleSet } from '../bundle/bundle-set.js';
import type { X509Svid, X509SvidSource } from '../svid/x509-svid.js';
import type { X509Context } from './parse.js';
import { WatchedSource, type SourceOptions } from './watched-source.js';

/** Options of {@link X509Source.create}. */
export interface X509SourceOptions extends SourceOptions {
  /** Chooses the SVID to serve among the workload's SVIDs; default the first (go-spiffe's default picker). */
  readonly picker?: (svids: readonly X509Svid[]) => X509Svid;
}

/**
 * The live X509-SVID and X.509 bundles of this workload from the Workload
 * API (go-spiffe's `workloadapi.X509Source`). Each update is parsed strictly
 * and swapped in as a whole; a malformed one is rejected (`watchError`) and
 * the previous material stays. Pass it as `svid` and `bundle` to the TLS
 * helpers: every new handshake reads the current SVID.
 *
 * @example
 * ```ts
 * const source = await X509Source.create({ address: 'unix:///run/spire/agent.sock' });
 * const server = createTlsServer({ svid: source, bundle: source, authorize: authorizeMemberOf(td) }, onSocket);
 * ```
 */
export class X509Source extends WatchedSource implements X509SvidSource, X509BundleSource {
  readonly #picker: (svids: readonly X509Svid[]) => X509Svid;
  #svid: X509Svid | undefined;
  #bundles: X509BundleSet | undefined;

  private constructor(options: X509SourceOptions) {
    super('X509Source', options);
    if (options.picker !== undefined && typeof options.picker !== 'function') throw new OptionsError('X509Source: "picker" must be a function');
    this.#picker = options.picker ?? ((svids) => svids[0]!);
    this.run((signal) =>
      this.client.watchX509Context(
        { onX509ContextUpdate: (c) => this.#update(c), onX509ContextWatchError: (e) => this.reportError(e) },
        signal,
      ),
    );
  }

  /**
   * Starts watching and resolves once the first X.509 context arrived.
   * @throws {@link OptionsError} for a bad address or options; {@link SourceError} on timeout, abort or refusal.
   */
  static create(options: X509SourceOptions = {}): Promise<X509Source> {
    const source = new X509Source(options);
    return source.started(options.timeoutMs, options.signal);
  }

  #update(context: X509Context): void {
    let svid: X509Svid;
    try {
      svid = this.#picker(context.svids);
      if (!context.svids.includes(svid)) throw new OptionsError('X509Source: the picker must return one of the SVIDs it was given');
    } catch (e) {
      this.reportError(e as Error);
      return;
    }
    // Both fields are assigned in the same synchronous step, so no reader sees a half update.
    this.#svid = svid;
    this.#bundles = context.bundles;
    this.markUpdated();
  }

  /** The current SVID. @throws {@link SourceError} `ERR_SOURCE_UNAVAILABLE` when closed or not ready. */
  getX509Svid(): X509Svid {
    this.check();
    return this.#svid!;
  }

  /** The current X.509 bundle of `td`. @throws {@link SourceError} when closed; {@link BundleError} `ERR_BUNDLE_NOT_FOUND`. */
  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle {
    this.check();
    const b = this.#bundles!.get(td);
    if (!b) throw new BundleError('ERR_BUNDLE_NOT_FOUND', `X509Source has no X.509 bundle for trust domain "${td.name}"`);
    return b;
  }
}
