/**
 * The naming rules endpoint metadata follows, so that the selectors the
 * `endpoint` attestor yields are the ones a Kubernetes pod could have:
 * DNS-1123 labels and subdomains (Kubernetes "Object Names and IDs"),
 * label keys and values ("Labels and Selectors", syntax and character set),
 * and Linux interface names (`dev_valid_name` in net/core/dev.c).
 * Each check returns undefined when the value is fine, else the reason.
 */
import { isIP } from 'node:net';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** RFC 1123 label (a Kubernetes namespace name): at most 63 of `[a-z0-9-]`, alphanumeric at both ends. */
export function dnsLabelProblem(v: string): string | undefined {
  if (v.length === 0) return 'must not be empty';
  if (v.length > 63) return `"${v}" is longer than 63 characters`;
  if (!DNS_LABEL.test(v)) return `"${v}" must consist of lower case letters, digits and '-', and start and end with a letter or digit (a DNS label, e.g. "backend")`;
  return undefined;
}

/** RFC 1123 subdomain (a Kubernetes pod or service-account name): at most 253 characters, dot-separated DNS labels. */
export function dnsSubdomainProblem(v: string): string | undefined {
  if (v.length === 0) return 'must not be empty';
  if (v.length > 253) return `"${v.slice(0, 20)}…" is longer than 253 characters`;
  if (!DNS_SUBDOMAIN.test(v)) return `"${v}" must consist of lower case letters, digits, '-' and '.', and start and end with a letter or digit (a DNS subdomain, e.g. "web-0")`;
  return undefined;
}

/** A label key: `[prefix/]name`, prefix a DNS subdomain, name at most 63 of `[A-Za-z0-9-_.]` alphanumeric at both ends. */
export function labelKeyProblem(k: string): string | undefined {
  const slash = k.indexOf('/');
  const name = slash < 0 ? k : k.slice(slash + 1);
  if (slash >= 0) {
    const prefix = k.slice(0, slash);
    const p = dnsSubdomainProblem(prefix);
    if (p !== undefined) return `label key prefix ${p}`;
  }
  if (name.length === 0) return `label key "${k}" has an empty name`;
  if (name.length > 63) return `label key "${k}": the name part is longer than 63 characters`;
  if (!LABEL_NAME.test(name)) return `label key "${k}" must be [prefix/]name with the name made of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  return undefined;
}

/** A label value: empty, or at most 63 of `[A-Za-z0-9-_.]` alphanumeric at both ends. */
export function labelValueProblem(v: string): string | undefined {
  if (v.length === 0) return undefined;
  if (v.length > 63) return `label value "${v.slice(0, 20)}…" is longer than 63 characters`;
  if (!LABEL_NAME.test(v)) return `label value "${v}" must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  return undefined;
}

/** An IPv4 or IPv6 address without a zone (`fe80::1%eth0` is refused: an endpoint's address is not link-scoped to the host). */
export function ipProblem(v: string): string | undefined {
  if (v.includes('%')) return `"${v}" has a zone index; give the address alone`;
  if (isIP(v) === 0) return `"${v}" is not an IPv4 or IPv6 address`;
  return undefined;
}

/** A Linux interface name: 1–15 bytes (IFNAMSIZ - 1), not `.` or `..`, no `/`, `:` or whitespace. */
export function interfaceNameProblem(v: string): string | undefined {
  if (v.length === 0) return 'must not be empty';
  if (Buffer.byteLength(v) > 15) return `"${v}" is longer than 15 bytes (Linux IFNAMSIZ)`;
  if (v === '.' || v === '..') return `"${v}" is not a valid interface name`;
  if (/[/:\s]/.test(v) || /[\u0000-\u001f\u007f]/.test(v)) return `"${v}" must not contain '/', ':', whitespace or control characters`;
  return undefined;
}
