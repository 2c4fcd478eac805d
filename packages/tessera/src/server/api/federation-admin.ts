import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { SpiffeBundle } from '@tessera/spiffe/bundle';
import type { TrustDomain } from '@tessera/spiffe/id';
import { FederationAdmin } from '../../gen/tessera/v1/admin_pb.js';
import { FederationRelationshipSchema, type FederationRelationship as FederationRelationshipMessage } from '../../gen/tessera/v1/types_pb.js';
import type { Datastore, FederationRelationship, StoredBundle } from '../datastore/index.js';
import { FederationError, parseFederatedTrustDomain, validateRelationship, type FederationErrorCode, type ValidRelationship } from '../federation/index.js';
import { bundleToProto } from './bundle-admin.js';
import { toConnectError } from './errors.js';

/** What the service needs from the running federation module. */
export interface FederationControl {
  /** Fetches a federated bundle now (see `RunningFederation.refreshNow`). */
  refreshNow(trustDomain: string): Promise<StoredBundle>;
  /** Relationships changed: reschedule (optional; the change feed also tells the module). */
  invalidate?(): void;
}

/** gRPC status of each federation error: remote failures are Unavailable or FailedPrecondition, never the caller's InvalidArgument. */
const CODES: Record<FederationErrorCode, Code> = {
  FEDERATION_NOT_FOUND: Code.NotFound,
  FEDERATION_INVALID_RELATIONSHIP: Code.InvalidArgument,
  FEDERATION_FETCH_FAILED: Code.Unavailable,
  FEDERATION_ENDPOINT_REJECTED: Code.FailedPrecondition,
  FEDERATION_NO_TRUST_BUNDLE: Code.FailedPrecondition,
  FEDERATION_BUNDLE_INVALID: Code.FailedPrecondition,
  FEDERATION_BUNDLE_STALE: Code.FailedPrecondition,
  FEDERATION_INVALID_CONFIG: Code.Internal,
};

function toStatus(e: unknown): ConnectError {
  if (e instanceof FederationError) return new ConnectError(e.message, CODES[e.code], undefined, undefined, e);
  return toConnectError(e);
}

/** A stored relationship as the Admin API's message, with the stored bundle of its trust domain. */
export function relationshipToProto(r: FederationRelationship, bundle: StoredBundle | undefined): FederationRelationshipMessage {
  return create(FederationRelationshipSchema, {
    trustDomain: r.trustDomain,
    bundleEndpointUrl: r.bundleEndpointUrl,
    profile: r.profile,
    endpointSpiffeId: r.endpointSpiffeId,
    trustDomainBundle: bundle?.bundle ?? '',
  });
}

/**
 * The Admin API's federation service (SPIRE's trust domain API): federation
 * relationships, validated before anything is stored (spec/spiffe.md §5),
 * and on-demand bundle refresh. A relationship's bootstrap bundle
 * (`trust_domain_bundle`) is stored as the trust domain's bundle; deleting a
 * relationship keeps the bundle (delete it with BundleAdmin).
 * @param own - the server's trust domain, which cannot be federated with.
 */
export function federationAdmin(ds: Datastore, own: TrustDomain, federation: FederationControl): ServiceImpl<typeof FederationAdmin> {
  const wrap = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw toStatus(e);
    }
  };
  const trustDomainOf = (name: string): TrustDomain => {
    if (name === '') throw new FederationError('FEDERATION_INVALID_RELATIONSHIP', 'trust domain is required');
    const td = parseFederatedTrustDomain(name);
    if (td.equals(own)) throw new FederationError('FEDERATION_INVALID_RELATIONSHIP', `"${td.name}" is the server's own trust domain; federate with other trust domains only`);
    return td;
  };
  const notFound = (td: TrustDomain): FederationError => new FederationError('FEDERATION_NOT_FOUND', `there is no federation relationship with trust domain "${td.name}"`);
  const storeBootstrap = async (v: ValidRelationship): Promise<StoredBundle | undefined> =>
    v.bootstrapBundle ? ds.setBundle(v.trustDomain.name, v.bootstrapBundle.marshal()) : ds.getBundle(v.trustDomain.name);

  return {
    listFederationRelationships: () =>
      wrap(async () => {
        const [rels, bundles] = await Promise.all([ds.listFederationRelationships(), ds.listBundles()]);
        const byTd = new Map(bundles.map((b) => [b.trustDomain, b]));
        return { relationships: rels.map((r) => relationshipToProto(r, byTd.get(r.trustDomain))) };
      }),

    getFederationRelationship: (req) =>
      wrap(async () => {
        const td = trustDomainOf(req.trustDomain);
        const r = await ds.getFederationRelationship(td.name);
        if (!r) throw notFound(td);
        return relationshipToProto(r, await ds.getBundle(td.name));
      }),

    createFederationRelationship: (req) =>
      wrap(async () => {
        const v = validateRelationship(req, own);
        const r = await ds.createFederationRelationship({
          trustDomain: v.trustDomain.name,
          bundleEndpointUrl: v.bundleEndpointUrl,
          profile: v.profile,
          endpointSpiffeId: v.endpointSpiffeId?.toString() ?? '',
        });
        let bundle: StoredBundle | undefined;
        try {
          bundle = await storeBootstrap(v);
        } catch (e) {
          // No relationship without the bundle the operator meant it to start from.
          await ds.deleteFederationRelationship(r.trustDomain).catch(() => undefined);
          throw e;
        }
        federation.invalidate?.();
        return relationshipToProto(r, bundle);
      }),

    updateFederationRelationship: (req) =>
      wrap(async () => {
        const td = trustDomainOf(req.trustDomain);
        const current = await ds.getFederationRelationship(td.name);
        if (!current) throw notFound(td);
        // Empty fields keep their value; a profile change to https_web drops the endpoint ID.
        const profile = req.profile || current.profile;
        const v = validateRelationship(
          {
            trustDomain: td.name,
            bundleEndpointUrl: req.bundleEndpointUrl || current.bundleEndpointUrl,
            profile,
            endpointSpiffeId: req.endpointSpiffeId || (profile === 'https_spiffe' ? current.endpointSpiffeId : ''),
            trustDomainBundle: req.trustDomainBundle,
          },
          own,
        );
        const r = await ds.updateFederationRelationship(td.name, {
          bundleEndpointUrl: v.bundleEndpointUrl,
          profile: v.profile,
          endpointSpiffeId: v.endpointSpiffeId?.toString() ?? '',
        });
        const bundle = await storeBootstrap(v);
        federation.invalidate?.();
        return relationshipToProto(r, bundle);
      }),

    deleteFederationRelationship: (req) =>
      wrap(async () => {
        const td = trustDomainOf(req.trustDomain);
        if (!(await ds.getFederationRelationship(td.name))) throw notFound(td);
        await ds.deleteFederationRelationship(td.name);
        federation.invalidate?.();
        return {};
      }),

    refreshBundle: (req) =>
      wrap(async () => {
        const td = trustDomainOf(req.trustDomain);
        const stored = await federation.refreshNow(td.name);
        try {
          return bundleToProto(SpiffeBundle.parse(td, stored.bundle));
        } catch (e) {
          throw new ConnectError(`the stored bundle of "${td.name}" cannot be shown: ${(e as Error).message}`, Code.Internal);
        }
      }),
  };
}
