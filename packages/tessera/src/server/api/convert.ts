import { create } from '@bufbuild/protobuf';
import { EntrySchema, SelectorSchema, AgentSchema, type Entry, type Agent } from '../../gen/tessera/v1/types_pb.js';
import type { RegistrationEntry, AttestedAgent, EntryInput, Selector } from '../datastore/index.js';

export function selectorsToProto(sels: readonly Selector[]) {
  return sels.map((s) => create(SelectorSchema, { type: s.type, value: s.value }));
}

export function entryToProto(e: RegistrationEntry): Entry {
  return create(EntrySchema, {
    id: e.id,
    spiffeId: e.spiffeId,
    parentId: e.parentId,
    selectors: selectorsToProto(e.selectors),
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    federatesWith: [...e.federatesWith],
    dnsNames: [...e.dnsNames],
    admin: e.admin,
    downstream: e.downstream,
    hint: e.hint,
    expiresAt: BigInt(e.expiresAt),
    revisionNumber: BigInt(e.revisionNumber),
    createdAt: BigInt(e.createdAt),
  });
}

/** The settable fields of a proto Entry, before validation. */
export function entryInputFromProto(e: Entry): EntryInput {
  return {
    spiffeId: e.spiffeId,
    parentId: e.parentId,
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509SvidTtl: e.x509SvidTtl,
    jwtSvidTtl: e.jwtSvidTtl,
    federatesWith: [...e.federatesWith],
    dnsNames: [...e.dnsNames],
    admin: e.admin,
    downstream: e.downstream,
    hint: e.hint,
    expiresAt: Number(e.expiresAt),
  };
}

export function agentToProto(a: AttestedAgent): Agent {
  return create(AgentSchema, {
    spiffeId: a.spiffeId,
    attestationType: a.attestationType,
    x509SvidSerialNumber: a.certSerial,
    x509SvidExpiresAt: BigInt(a.certExpiresAt),
    selectors: selectorsToProto(a.selectors),
    banned: a.banned,
    canReattest: a.canReattest,
    createdAt: BigInt(a.createdAt),
  });
}
