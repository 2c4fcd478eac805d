/**
 * The endpoint model: a network namespace on this node plus the
 * Kubernetes-style metadata (issue 4, "`endpoint` attestor") that the
 * agent's `endpoint` attestor reports for every process inside it.
 */
import { isAbsolute, normalize } from 'node:path';
import { invalidField } from './errors.js';
import { dnsLabelProblem, dnsSubdomainProblem, interfaceNameProblem, ipProblem, labelKeyProblem, labelValueProblem } from './names.js';
import type { NetnsIdentity } from './netns.js';

/** What a caller registers (the admin API's AddEndpoint, `tessera agent endpoint add`). */
export interface EndpointSpec {
  /** Pod-like name, a DNS subdomain (`web-0`). */
  readonly name: string;
  /** Namespace, a DNS label (`backend`). */
  readonly namespace: string;
  /** Service account, a DNS subdomain; default `default` (as Kubernetes gives every pod). */
  readonly serviceAccount?: string | undefined;
  /** Kubernetes-style labels. */
  readonly labels?: Readonly<Record<string, string>> | undefined;
  /** Absolute path of the network namespace file (`/var/run/netns/x`, `/proc/<pid>/ns/net`). */
  readonly netnsPath: string;
  /** IPv4 or IPv6 address. */
  readonly ip?: string | undefined;
  /** Host-side interface (the veth peer in the host namespace). */
  readonly hostInterface?: string | undefined;
}

/** A validated spec: defaults applied, labels copied and frozen. */
export interface ValidEndpointSpec {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly netnsPath: string;
  readonly ip: string | undefined;
  readonly hostInterface: string | undefined;
}

/** A registered endpoint: its spec, the namespace identity seen when it was added, and when. */
export interface Endpoint extends ValidEndpointSpec {
  /** (st_dev, st_ino) of `netnsPath` at registration. */
  readonly netns: NetnsIdentity;
  readonly createdAt: Date;
}

/** Service account of an endpoint registered without one. */
export const DEFAULT_SERVICE_ACCOUNT = 'default';
/** More labels than this is a mistake, not a pod. */
export const MAX_LABELS = 64;
const MAX_PATH = 4096;

function str(v: unknown, field: string, optional: true): string | undefined;
function str(v: unknown, field: string, optional: false): string;
function str(v: unknown, field: string, optional: boolean): string | undefined {
  if (v === undefined || v === null || (optional && v === '')) {
    if (optional) return undefined;
    throw invalidField(field, 'is required');
  }
  if (typeof v !== 'string') throw invalidField(field, 'must be a string');
  return v;
}

function check(field: string, problem: string | undefined): void {
  if (problem !== undefined) throw invalidField(field, problem);
}

/**
 * Checks every field of `spec` (name and service account: DNS subdomains;
 * namespace: DNS label; labels: Kubernetes label syntax; netnsPath:
 * absolute and normalised; ip: IPv4/IPv6; hostInterface: Linux interface
 * name) and returns it with defaults applied. Empty optional strings count as absent.
 *
 * @throws EndpointError ENDPOINT_INVALID naming the first bad field.
 * @example
 * ```ts
 * validateEndpointSpec({ name: 'web-0', namespace: 'backend', netnsPath: '/var/run/netns/web-0' }).serviceAccount; // "default"
 * ```
 */
export function validateEndpointSpec(spec: EndpointSpec): ValidEndpointSpec {
  if (spec === null || typeof spec !== 'object') throw invalidField('endpoint', 'must be an object');
  const name = str(spec.name, 'name', false);
  check('name', dnsSubdomainProblem(name));
  const namespace = str(spec.namespace, 'namespace', false);
  check('namespace', dnsLabelProblem(namespace));
  const serviceAccount = str(spec.serviceAccount, 'serviceAccount', true) ?? DEFAULT_SERVICE_ACCOUNT;
  check('serviceAccount', dnsSubdomainProblem(serviceAccount));

  const labels: Record<string, string> = {};
  const rawLabels: unknown = spec.labels ?? {};
  if (rawLabels === null || typeof rawLabels !== 'object' || Array.isArray(rawLabels)) throw invalidField('labels', 'must be a map of key to value');
  const entries = Object.entries(rawLabels as Record<string, unknown>);
  if (entries.length > MAX_LABELS) throw invalidField('labels', `at most ${MAX_LABELS} labels`);
  for (const [k, v] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    check(`labels["${k}"]`, labelKeyProblem(k));
    if (typeof v !== 'string') throw invalidField(`labels["${k}"]`, 'value must be a string');
    check(`labels["${k}"]`, labelValueProblem(v));
    labels[k] = v;
  }

  const netnsPath = str(spec.netnsPath, 'netnsPath', false);
  if (netnsPath.length > MAX_PATH) throw invalidField('netnsPath', `longer than ${MAX_PATH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(netnsPath)) throw invalidField('netnsPath', 'contains control characters');
  if (!isAbsolute(netnsPath)) throw invalidField('netnsPath', `"${netnsPath}" must be an absolute path (e.g. /var/run/netns/web-0 or /proc/<pid>/ns/net)`);
  // The stored path is what re-validation stats later: no `..` or `//` that could mean something else then.
  if (normalize(netnsPath) !== netnsPath || (netnsPath.endsWith('/') && netnsPath !== '/')) {
    throw invalidField('netnsPath', `"${netnsPath}" must be normalised (no "..", ".", "//" or trailing "/")`);
  }

  const ip = str(spec.ip, 'ip', true);
  if (ip !== undefined) check('ip', ipProblem(ip));
  const hostInterface = str(spec.hostInterface, 'hostInterface', true);
  if (hostInterface !== undefined) check('hostInterface', interfaceNameProblem(hostInterface));

  return { name, namespace, serviceAccount, labels: Object.freeze(labels), netnsPath, ip, hostInterface };
}

/** `namespace/name`, the key endpoints are registered under. */
export function endpointKey(e: { readonly namespace: string; readonly name: string }): string {
  return `${e.namespace}/${e.name}`;
}
