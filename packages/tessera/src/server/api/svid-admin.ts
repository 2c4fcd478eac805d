import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { SpiffeId, type TrustDomain } from '@tessera/spiffe/id';
import { SvidAdmin } from '../../gen/tessera/v1/admin_pb.js';
import { isCaError, type ServerCa } from '../ca/index.js';

function workloadId(td: TrustDomain, id: string): SpiffeId {
  let parsed: SpiffeId;
  try {
    parsed = SpiffeId.parse(id);
  } catch (e) {
    throw new ConnectError(`invalid SPIFFE ID "${id}": ${(e as Error).message}`, Code.InvalidArgument);
  }
  if (!parsed.memberOf(td)) throw new ConnectError(`SPIFFE ID "${id}" is not in trust domain "${td.name}"`, Code.InvalidArgument);
  if (parsed.isRoot()) throw new ConnectError(`SPIFFE ID "${id}" must have a path`, Code.InvalidArgument);
  return parsed;
}

function caFailure(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (isCaError(e)) return new ConnectError(e.message, e.code === 'CA_INVALID_REQUEST' ? Code.InvalidArgument : Code.Unavailable);
  return new ConnectError('internal error', Code.Internal);
}

/** The Admin API's SVID minting (SPIRE's `x509 mint` / `jwt mint`): keys stay with the caller. */
export function svidAdmin(ca: ServerCa, onSigned: (kind: 'x509' | 'jwt') => void = () => undefined): ServiceImpl<typeof SvidAdmin> {
  return {
    async mintX509Svid(req) {
      try {
        if (req.csr.length === 0) throw new ConnectError('a certificate signing request is required', Code.InvalidArgument);
        const s = await ca.signX509Svid({ spiffeId: workloadId(ca.trustDomain, req.spiffeId), csr: req.csr, ttlSeconds: req.ttl, dnsNames: req.dnsNames });
        onSigned('x509');
        return { certificates: s.certificates, expiresAt: BigInt(Math.floor(s.expiresAt.getTime() / 1000)) };
      } catch (e) {
        throw caFailure(e);
      }
    },
    async mintJwtSvid(req) {
      try {
        if (req.audience.length === 0) throw new ConnectError('at least one audience is required', Code.InvalidArgument);
        const s = ca.signJwtSvid({ spiffeId: workloadId(ca.trustDomain, req.spiffeId), audience: req.audience, ttlSeconds: req.ttl });
        onSigned('jwt');
        return { token: s.token, expiresAt: BigInt(Math.floor(s.expiresAt.getTime() / 1000)) };
      } catch (e) {
        throw caFailure(e);
      }
    },
  };
}
