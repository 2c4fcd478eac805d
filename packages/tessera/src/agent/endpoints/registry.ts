/**
 * The endpoints registered with this agent (issue 4, "Endpoint
 * registration"), keyed by (namespace, name), persisted in
 * `<dir>/endpoints.json` so they survive an agent restart.
 */
import { join } from 'node:path';
import { endpointKey, validateEndpointSpec, type Endpoint, type EndpointSpec } from './endpoint.js';
import { ENDPOINT_FILE_NAME, loadEndpointFile, saveEndpointFile } from './endpoint-file.js';
import { EndpointError } from './errors.js';
import { linuxNetnsReader, netnsKey, sameNetns, type NetnsIdentity, type NetnsReader } from './netns.js';

export interface EndpointRegistryOptions {
  /** Directory of the registry file (`endpoints.json`); created (0700) on first write. Typically `<dataDir>/endpoints`. */
  readonly dir: string;
  /** Namespace inspection; default the real kernel ({@link linuxNetnsReader}). */
  readonly netns?: NetnsReader;
  /** Clock for `createdAt`; default `() => new Date()`. */
  readonly now?: () => Date;
  /**
   * Accept the agent's own network namespace. Default false: an endpoint in
   * the host namespace would give its selectors to every host process.
   */
  readonly allowHostNetns?: boolean;
}

/** What changed; `endpoint` is the endpoint added or the one removed. */
export interface EndpointChange {
  readonly kind: 'added' | 'removed';
  readonly endpoint: Endpoint;
}

/** Called after a change is persisted. */
export type EndpointChangeListener = (change: EndpointChange) => void;

/**
 * Registered endpoints. Changes are serialised, persisted atomically before
 * they take effect (a failed write changes nothing) and announced to
 * {@link EndpointRegistry.onChange} listeners afterwards, so the agent can
 * re-attest and re-push Workload API streams.
 *
 * An endpoint's network namespace must exist when it is added: its identity
 * (st_dev, st_ino) is recorded then, and one namespace is one endpoint.
 *
 * @example
 * ```ts
 * const registry = new EndpointRegistry({ dir: join(dataDir, 'endpoints') });
 * const stop = registry.onChange(({ kind, endpoint }) => log.info(`endpoint ${kind}`, { name: endpoint.name }));
 * await registry.add({ name: 'web-0', namespace: 'backend', netnsPath: '/var/run/netns/web-0', labels: { app: 'web' } });
 * ```
 */
export class EndpointRegistry {
  /** The registry file. */
  readonly path: string;
  readonly #netns: NetnsReader;
  readonly #now: () => Date;
  readonly #allowHostNetns: boolean;
  #endpoints = new Map<string, Endpoint>();
  readonly #listeners = new Set<EndpointChangeListener>();
  /** Tail of the chain of changes: one at a time, in call order. */
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * Loads `<dir>/endpoints.json` (synchronously: once, at agent start); a
   * missing file is an empty registry.
   * @throws TypeError for bad options; EndpointError ENDPOINT_STORE_CORRUPT
   *   if the file is damaged, ENDPOINT_STORE_FAILED if it cannot be read.
   */
  constructor(options: EndpointRegistryOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('EndpointRegistry: options are required');
    if (typeof options.dir !== 'string' || options.dir === '') throw new TypeError('EndpointRegistry: dir must be a non-empty path');
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('EndpointRegistry: now must be a function returning a Date');
    if (options.allowHostNetns !== undefined && typeof options.allowHostNetns !== 'boolean') throw new TypeError('EndpointRegistry: allowHostNetns must be a boolean');
    this.path = join(options.dir, ENDPOINT_FILE_NAME);
    this.#netns = options.netns ?? linuxNetnsReader();
    this.#now = options.now ?? (() => new Date());
    this.#allowHostNetns = options.allowHostNetns ?? false;
    for (const e of loadEndpointFile(this.path)) this.#endpoints.set(endpointKey(e), e);
  }

  /** Every endpoint, sorted by namespace then name; only `namespace`'s if given. */
  list(filter: { namespace?: string | undefined } = {}): Endpoint[] {
    const all = [...this.#endpoints.values()].filter((e) => !filter.namespace || e.namespace === filter.namespace);
    return all.sort((a, b) => (a.namespace === b.namespace ? cmp(a.name, b.name) : cmp(a.namespace, b.namespace)));
  }

  /** The endpoint registered as (namespace, name), if any. */
  get(namespace: string, name: string): Endpoint | undefined {
    return this.#endpoints.get(endpointKey({ namespace, name }));
  }

  /**
   * The endpoints whose namespace had this identity when they were
   * registered. The namespace file may since name another namespace:
   * callers that act on the answer re-check (see `endpointAttestor`).
   */
  byNetns(id: NetnsIdentity): Endpoint[] {
    const key = netnsKey(id);
    return this.list().filter((e) => netnsKey(e.netns) === key);
  }

  /**
   * Registers an endpoint.
   * @throws EndpointError ENDPOINT_INVALID, ENDPOINT_EXISTS, ENDPOINT_NETNS_UNREADABLE,
   *   ENDPOINT_NETNS_NOT_NAMESPACE, ENDPOINT_NETNS_HOST, ENDPOINT_NETNS_IN_USE, ENDPOINT_STORE_FAILED
   */
  add(spec: EndpointSpec): Promise<Endpoint> {
    return this.#serially(async () => {
      const valid = validateEndpointSpec(spec);
      const key = endpointKey(valid);
      if (this.#endpoints.has(key)) throw new EndpointError('ENDPOINT_EXISTS', `endpoint ${key} is already registered; remove it first to change it`);
      let info;
      try {
        info = await this.#netns.inspect(valid.netnsPath);
      } catch (e) {
        throw new EndpointError('ENDPOINT_NETNS_UNREADABLE', `cannot read network namespace ${valid.netnsPath}: ${(e as Error).message} (create the namespace before registering it)`, { cause: e });
      }
      if (!info.isNamespace) {
        throw new EndpointError('ENDPOINT_NETNS_NOT_NAMESPACE', `${valid.netnsPath} is not a namespace file (give /var/run/netns/<name> or /proc/<pid>/ns/net)`);
      }
      const netns: NetnsIdentity = { dev: info.dev, ino: info.ino };
      if (!this.#allowHostNetns && sameNetns(netns, await this.#netns.ofSelf())) {
        throw new EndpointError('ENDPOINT_NETNS_HOST', `${valid.netnsPath} is the agent's own network namespace; an endpoint there would give its selectors to every host process`);
      }
      for (const other of this.byNetns(netns)) {
        if (await this.#stillNames(other, netns)) {
          throw new EndpointError('ENDPOINT_NETNS_IN_USE', `network namespace ${valid.netnsPath} is already registered as endpoint ${endpointKey(other)}`);
        }
      }
      const endpoint: Endpoint = Object.freeze({ ...valid, netns, createdAt: this.#now() });
      const next = new Map(this.#endpoints).set(key, endpoint);
      await saveEndpointFile(this.path, [...next.values()]);
      this.#endpoints = next;
      this.#emit({ kind: 'added', endpoint });
      return endpoint;
    });
  }

  /**
   * Unregisters (namespace, name) and returns what it was.
   * @throws EndpointError ENDPOINT_NOT_FOUND, ENDPOINT_STORE_FAILED
   */
  remove(namespace: string, name: string): Promise<Endpoint> {
    return this.#serially(async () => {
      const key = endpointKey({ namespace, name });
      const endpoint = this.#endpoints.get(key);
      if (endpoint === undefined) throw new EndpointError('ENDPOINT_NOT_FOUND', `no endpoint ${key} is registered`);
      const next = new Map(this.#endpoints);
      next.delete(key);
      await saveEndpointFile(this.path, [...next.values()]);
      this.#endpoints = next;
      this.#emit({ kind: 'removed', endpoint });
      return endpoint;
    });
  }

  /**
   * Calls `listener` after every persisted change. A throwing listener is
   * ignored (it cannot undo the change or starve the others).
   * @returns a function that unsubscribes.
   */
  onChange(listener: EndpointChangeListener): () => void {
    if (typeof listener !== 'function') throw new TypeError('EndpointRegistry.onChange: listener must be a function');
    // A wrapper per subscription, so subscribing one function twice needs two unsubscribes.
    const entry: EndpointChangeListener = (c) => listener(c);
    this.#listeners.add(entry);
    return () => void this.#listeners.delete(entry);
  }

  /** Whether `e`'s namespace file still resolves to `id` (it may since have been deleted or re-created). */
  async #stillNames(e: Endpoint, id: NetnsIdentity): Promise<boolean> {
    try {
      const now = await this.#netns.inspect(e.netnsPath);
      return sameNetns(now, id);
    } catch {
      return false;
    }
  }

  #emit(change: EndpointChange): void {
    for (const l of [...this.#listeners]) {
      try {
        l(change);
      } catch {
        // see onChange
      }
    }
  }

  #serially<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(f, f);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
