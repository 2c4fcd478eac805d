/**
 * The agent's EndpointAdmin service (proto/tessera/v1/agent_admin.proto):
 * endpoint registration over the root-only admin socket, the CNI-like call
 * of issue 4 ("Endpoint registration").
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from '@connectrpc/connect';
import { EndpointAdmin, WorkloadEndpointSchema, type WorkloadEndpoint } from '../../gen/tessera/v1/agent_admin_pb.js';
import { EndpointError, type Endpoint, type EndpointErrorCode, type EndpointRegistry, type EndpointSpec } from '../endpoints/index.js';

/** gRPC status of each {@link EndpointErrorCode}. */
export const ENDPOINT_ERROR_STATUS: Readonly<Record<EndpointErrorCode, Code>> = {
  ENDPOINT_INVALID: Code.InvalidArgument,
  ENDPOINT_EXISTS: Code.AlreadyExists,
  ENDPOINT_NETNS_IN_USE: Code.AlreadyExists,
  ENDPOINT_NOT_FOUND: Code.NotFound,
  ENDPOINT_NETNS_UNREADABLE: Code.FailedPrecondition,
  ENDPOINT_NETNS_NOT_NAMESPACE: Code.FailedPrecondition,
  ENDPOINT_NETNS_HOST: Code.FailedPrecondition,
  ENDPOINT_STORE_CORRUPT: Code.Internal,
  ENDPOINT_STORE_FAILED: Code.Internal,
};

/**
 * Any error as a ConnectError: EndpointErrors with their mapped status and
 * message (the socket is root-only, so registry paths may be shown), anything
 * else as Internal without details.
 */
export function endpointConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof EndpointError) return new ConnectError(e.message, ENDPOINT_ERROR_STATUS[e.code], undefined, undefined, e);
  return new ConnectError('internal error', Code.Internal, undefined, undefined, e);
}

async function mapped<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw endpointConnectError(e);
  }
}

/** The wire form of a registered endpoint. */
export function endpointToProto(e: Endpoint): WorkloadEndpoint {
  return create(WorkloadEndpointSchema, {
    name: e.name,
    namespace: e.namespace,
    serviceAccount: e.serviceAccount,
    labels: { ...e.labels },
    netnsPath: e.netnsPath,
    ip: e.ip ?? '',
    hostInterface: e.hostInterface ?? '',
    netnsDev: e.netns.dev,
    netnsIno: e.netns.ino,
    createdAt: BigInt(Math.floor(e.createdAt.getTime() / 1000)),
  });
}

/** The registrable fields of a wire endpoint (read-only fields are ignored; empty strings are absent). */
export function endpointSpecFromProto(p: WorkloadEndpoint): EndpointSpec {
  return {
    name: p.name,
    namespace: p.namespace,
    serviceAccount: p.serviceAccount,
    labels: { ...p.labels },
    netnsPath: p.netnsPath,
    ip: p.ip,
    hostInterface: p.hostInterface,
  };
}

/** The EndpointAdmin implementation over `registry`. */
export function endpointAdmin(registry: EndpointRegistry): ServiceImpl<typeof EndpointAdmin> {
  return {
    addEndpoint: (req) =>
      mapped(async () => {
        if (req.endpoint === undefined) throw new ConnectError('endpoint is required', Code.InvalidArgument);
        return { endpoint: endpointToProto(await registry.add(endpointSpecFromProto(req.endpoint))) };
      }),
    removeEndpoint: (req) =>
      mapped(async () => {
        if (req.namespace === '' || req.name === '') throw new ConnectError('namespace and name are required', Code.InvalidArgument);
        return { endpoint: endpointToProto(await registry.remove(req.namespace, req.name)) };
      }),
    listEndpoints: (req) => mapped(async () => ({ endpoints: registry.list({ namespace: req.namespace }).map(endpointToProto) })),
  };
}

/**
 * Adds the EndpointAdmin service over `registry` to `router`. AddEndpoint
 * and RemoveEndpoint fail with InvalidArgument (bad field, named in the
 * message), AlreadyExists (taken name or namespace), NotFound, or
 * FailedPrecondition (namespace unreadable, not a namespace, the agent's own).
 *
 * @example
 * ```ts
 * await serveGrpcOnUnixSocket(path, (router) => registerEndpointAdmin(router, registry), { mode: 0o600 });
 * ```
 */
export function registerEndpointAdmin(router: ConnectRouter, registry: EndpointRegistry): void {
  router.service(EndpointAdmin, endpointAdmin(registry));
}
