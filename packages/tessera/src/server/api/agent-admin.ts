import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { SpiffeId, type TrustDomain } from '@tessera/spiffe/id';
import { AgentAdmin } from '../../gen/tessera/v1/admin_pb.js';
import type { AgentFilter, Datastore } from '../datastore/index.js';
import { serverId, validateSelector } from '../registration/index.js';
import { agentToProto } from './convert.js';
import { withConnectErrors } from './errors.js';

/** The agent ID a join token attests to (SPIRE: spiffe://<td>/spire/agent/join_token/<token>). */
export function joinTokenAgentId(td: TrustDomain, token: string): string {
  return `spiffe://${td.name}/tessera/agent/join_token/${token}`;
}

/** The node selector an agent attested with `token` carries; node alias entries match on it. */
export const joinTokenSelector = (token: string) => ({ type: 'join_token', value: token });

const TOKEN = /^[A-Za-z0-9._-]{8,128}$/;
const MAX_TOKEN_TTL = 7 * 24 * 3600;

export interface AgentAdminOptions {
  readonly trustDomain: TrustDomain;
  readonly joinTokenTtlSeconds: number;
  readonly now: () => Date;
}

function agentId(td: TrustDomain, id: string): string {
  let parsed: SpiffeId;
  try {
    parsed = SpiffeId.parse(id);
  } catch (e) {
    throw new ConnectError(`invalid agent SPIFFE ID "${id}": ${(e as Error).message}`, Code.InvalidArgument);
  }
  if (!parsed.memberOf(td)) throw new ConnectError(`agent SPIFFE ID "${id}" is not in trust domain "${td.name}"`, Code.InvalidArgument);
  return parsed.toString();
}

/** The Admin API's agent service: attested agents, bans, evictions and join tokens. */
export function agentAdmin(ds: Datastore, opts: AgentAdminOptions): ServiceImpl<typeof AgentAdmin> {
  const td = opts.trustDomain;
  return {
    countAgents: () => withConnectErrors(async () => ({ count: BigInt(await ds.countAgents()) })),
    listAgents: (req) =>
      withConnectErrors(async () => {
        const filter: AgentFilter = {};
        if (req.byAttestationType) filter.attestationType = req.byAttestationType;
        if (req.byBanned === 1) filter.banned = true;
        if (req.byBanned === 2) filter.banned = false;
        if (req.bySelectors.length > 0) filter.selectors = { selectors: req.bySelectors.map((s, i) => validateSelector({ type: s.type, value: s.value }, `selectors[${i}]`)), match: 'subset' };
        const page = await ds.listAgents(filter, { pageSize: req.pageSize || undefined, pageToken: req.pageToken || undefined });
        return { agents: page.items.map(agentToProto), nextPageToken: page.nextPageToken ?? '' };
      }),
    getAgent: (req) =>
      withConnectErrors(async () => {
        const a = await ds.getAgent(agentId(td, req.spiffeId));
        if (!a) throw new ConnectError(`agent "${req.spiffeId}" not found`, Code.NotFound);
        return agentToProto(a);
      }),
    banAgent: (req) =>
      withConnectErrors(async () => {
        await ds.banAgent(agentId(td, req.spiffeId));
        return {};
      }),
    deleteAgent: (req) =>
      withConnectErrors(async () => {
        await ds.deleteAgent(agentId(td, req.spiffeId));
        return {};
      }),
    createJoinToken: (req) =>
      withConnectErrors(async () => {
        const ttl = req.ttl === 0 ? opts.joinTokenTtlSeconds : req.ttl;
        if (ttl < 0 || ttl > MAX_TOKEN_TTL) throw new ConnectError(`join token TTL must be between 1 and ${MAX_TOKEN_TTL} seconds`, Code.InvalidArgument);
        const token = req.token || randomUUID();
        if (!TOKEN.test(token)) throw new ConnectError('join token must be 8–128 characters of letters, digits, ".", "_" or "-"', Code.InvalidArgument);
        let alias: string | undefined;
        if (req.agentAlias) {
          alias = agentId(td, req.agentAlias);
          if (SpiffeId.parse(alias).isRoot()) throw new ConnectError('the agent alias must have a path', Code.InvalidArgument);
        }
        const expiresAt = Math.floor(opts.now().getTime() / 1000) + ttl;
        // The alias is a node alias entry: parented to the server, matched by
        // the token's node selector. It is written first: if the process dies
        // before the token is stored, the entry matches no agent ever.
        const aliasEntry = alias ? await ds.createEntry({ spiffeId: alias, parentId: serverId(td.name), selectors: [joinTokenSelector(token)] }) : undefined;
        try {
          const t = await ds.createJoinToken({ token, expiresAt, ...(alias ? { spiffeId: alias } : {}) });
          return { value: t.token, expiresAt: BigInt(t.expiresAt) };
        } catch (e) {
          if (aliasEntry) await ds.deleteEntry(aliasEntry.id).catch(() => undefined);
          throw e;
        }
      }),
  };
}
