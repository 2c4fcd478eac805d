import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { TrustDomain } from '@tessera/spiffe/id';
import { SpiffeBundle, X509Bundle } from '@tessera/spiffe/bundle';
import { BundleAdmin, DeleteFederatedBundleRequest_Mode } from '../../gen/tessera/v1/admin_pb.js';
import { BundleSchema, JwtKeySchema, type Bundle } from '../../gen/tessera/v1/types_pb.js';
import type { Datastore, DeleteBundleMode } from '../datastore/index.js';
import type { ServerCa } from '../ca/index.js';
import { withConnectErrors } from './errors.js';

/** A SPIFFE bundle as the Admin API's Bundle message. */
export function bundleToProto(b: SpiffeBundle): Bundle {
  return create(BundleSchema, {
    trustDomain: b.trustDomain.name,
    x509Authorities: b.x509Authorities(),
    jwtAuthorities: [...b.jwtAuthorities()].map(([kid, key]) =>
      create(JwtKeySchema, { keyId: kid, publicKey: key.export({ type: 'spki', format: 'der' }) as Buffer }),
    ),
    sequenceNumber: BigInt(b.sequenceNumber ?? 0),
    refreshHint: BigInt(b.refreshHintSeconds ?? 0),
  });
}

function foreignTrustDomain(own: TrustDomain, name: string): TrustDomain {
  let td: TrustDomain;
  try {
    td = TrustDomain.parse(name);
  } catch (e) {
    throw new ConnectError(`invalid trust domain "${name}": ${(e as Error).message}`, Code.InvalidArgument);
  }
  if (td.equals(own)) throw new ConnectError(`"${td.name}" is the server's own trust domain; its bundle is managed by the CA`, Code.InvalidArgument);
  return td;
}

/** Parses an operator-supplied bundle: PEM certificates or SPIFFE bundle JSON. */
export function parseBundleInput(td: TrustDomain, data: Uint8Array, format: string): SpiffeBundle {
  try {
    if (format === 'pem') return SpiffeBundle.fromX509Bundle(X509Bundle.parse(td, data));
    if (format === 'spiffe' || format === '') return SpiffeBundle.parse(td, data);
  } catch (e) {
    throw new ConnectError(`invalid bundle for "${td.name}": ${(e as Error).message}`, Code.InvalidArgument);
  }
  throw new ConnectError(`unknown bundle format "${format}": use pem or spiffe`, Code.InvalidArgument);
}

/** SPIRE's bundle delete modes, as the datastore names them. */
const DELETE_MODES: Partial<Record<number, DeleteBundleMode>> = {
  [DeleteFederatedBundleRequest_Mode.RESTRICT]: 'restrict',
  [DeleteFederatedBundleRequest_Mode.DISSOCIATE]: 'dissociate',
  [DeleteFederatedBundleRequest_Mode.DELETE]: 'delete',
};

/** The Admin API's bundle service: the CA's own bundle and federated bundles. */
export function bundleAdmin(ds: Datastore, ca: ServerCa): ServiceImpl<typeof BundleAdmin> {
  const own = ca.trustDomain;
  const load = async (td: TrustDomain): Promise<SpiffeBundle> => {
    const stored = await ds.getBundle(td.name);
    if (!stored) throw new ConnectError(`no bundle for trust domain "${td.name}"`, Code.NotFound);
    return SpiffeBundle.parse(td, stored.bundle);
  };
  return {
    // The published bundle: the union of every replica's authorities (falls back to this CA's own).
    getBundle: () =>
      withConnectErrors(async () => {
        const stored = await ds.getBundle(own.name);
        return bundleToProto(stored ? SpiffeBundle.parse(own, stored.bundle) : ca.bundle());
      }),
    listFederatedBundles: () =>
      withConnectErrors(async () => ({
        bundles: (await ds.listBundles()).filter((b) => b.trustDomain !== own.name).map((b) => bundleToProto(SpiffeBundle.parse(TrustDomain.parse(b.trustDomain), b.bundle))),
      })),
    getFederatedBundle: (req) => withConnectErrors(async () => bundleToProto(await load(foreignTrustDomain(own, req.trustDomain)))),
    setFederatedBundle: (req) =>
      withConnectErrors(async () => {
        const td = foreignTrustDomain(own, req.trustDomain);
        const b = parseBundleInput(td, req.bundle, req.format);
        await ds.setBundle(td.name, b.marshal());
        return bundleToProto(b);
      }),
    // One datastore transaction: entries are dissociated or deleted together with the bundle, or nothing changes.
    deleteFederatedBundle: (req) =>
      withConnectErrors(async () => {
        const mode = DELETE_MODES[req.mode];
        if (mode === undefined) throw new ConnectError(`unknown delete mode ${req.mode}: use RESTRICT, DISSOCIATE or DELETE`, Code.InvalidArgument);
        await ds.deleteBundle(foreignTrustDomain(own, req.trustDomain).name, mode);
        return {};
      }),
  };
}
