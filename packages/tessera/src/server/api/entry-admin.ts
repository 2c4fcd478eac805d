import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { TrustDomain } from '@tessera/spiffe/id';
import {
  EntryAdmin,
  BatchCreateEntryResponse_ResultSchema,
  BatchUpdateEntryResponse_ResultSchema,
  BatchDeleteEntryResponse_ResultSchema,
  type EntryFilter as ProtoEntryFilter,
} from '../../gen/tessera/v1/admin_pb.js';
import { StatusSchema } from '../../gen/tessera/v1/types_pb.js';
import type { Datastore, EntryFilter, EntryField, SetMatch } from '../datastore/index.js';
import { validateEntryInput, validateSelector } from '../registration/index.js';
import { entryInputFromProto, entryToProto } from './convert.js';
import { statusOf, toConnectError } from './errors.js';

const MATCHES: readonly SetMatch[] = ['exact', 'subset', 'superset', 'any'];
const SETTABLE: readonly EntryField[] = ['spiffeId', 'parentId', 'selectors', 'x509SvidTtl', 'jwtSvidTtl', 'federatesWith', 'dnsNames', 'admin', 'downstream', 'hint', 'expiresAt'];
const MAX_BATCH = 500;

function filterFromProto(f: ProtoEntryFilter | undefined): EntryFilter {
  if (!f) return {};
  const out: EntryFilter = {};
  if (f.bySpiffeId) out.spiffeId = f.bySpiffeId;
  if (f.byParentId) out.parentId = f.byParentId;
  if (f.byHint) out.hint = f.byHint;
  if (f.byDownstream) out.downstream = true;
  const match = (f.selectorMatch || 'exact') as SetMatch;
  if (!MATCHES.includes(match)) throw new ConnectError(`invalid selector match "${f.selectorMatch}": use exact, subset, superset or any`, Code.InvalidArgument);
  if (f.bySelectors.length > 0) out.selectors = { selectors: f.bySelectors.map((s, i) => validateSelector({ type: s.type, value: s.value }, `filter.selectors[${i}]`)), match };
  if (f.byFederatesWith.length > 0) out.federatesWith = { trustDomains: [...f.byFederatesWith], match: 'subset' };
  return out;
}

function batchSize(n: number): void {
  if (n === 0) throw new ConnectError('the batch is empty', Code.InvalidArgument);
  if (n > MAX_BATCH) throw new ConnectError(`at most ${MAX_BATCH} items per batch`, Code.InvalidArgument);
}

const OK = create(StatusSchema, { code: 0, message: 'OK' });
const statusMsg = (e: unknown) => {
  const s = statusOf(e);
  return create(StatusSchema, { code: s.code, message: s.message });
};

/**
 * The Admin API's entry service (SPIRE's entry API): validation by the
 * registration layer, storage in the datastore, per-item batch results.
 */
export function entryAdmin(ds: Datastore, trustDomain: TrustDomain): ServiceImpl<typeof EntryAdmin> {
  return {
    async countEntries(req) {
      try {
        return { count: BigInt(await ds.countEntries(filterFromProto(req.filter))) };
      } catch (e) {
        throw toConnectError(e);
      }
    },
    async listEntries(req) {
      try {
        const page = await ds.listEntries(filterFromProto(req.filter), { pageSize: req.pageSize || undefined, pageToken: req.pageToken || undefined });
        return { entries: page.items.map(entryToProto), nextPageToken: page.nextPageToken ?? '' };
      } catch (e) {
        throw toConnectError(e);
      }
    },
    async getEntry(req) {
      const e = await ds.getEntry(req.id).catch((err: unknown) => {
        throw toConnectError(err);
      });
      if (!e) throw new ConnectError(`entry "${req.id}" not found`, Code.NotFound);
      return entryToProto(e);
    },
    async batchCreateEntry(req) {
      batchSize(req.entries.length);
      // Validate every item; store the valid ones in one transaction (one
      // commit instead of one per item). If that fails (a duplicate, say),
      // store them one by one so each item gets its own status, as SPIRE
      // reports them.
      const results: ReturnType<typeof create<typeof BatchCreateEntryResponse_ResultSchema>>[] = new Array(req.entries.length);
      const valid: { index: number; input: ReturnType<typeof validateEntryInput> }[] = [];
      req.entries.forEach((pe, index) => {
        try {
          valid.push({ index, input: validateEntryInput(entryInputFromProto(pe), trustDomain) });
        } catch (e) {
          results[index] = create(BatchCreateEntryResponse_ResultSchema, { status: statusMsg(e) });
        }
      });
      let stored = false;
      if (valid.length > 1) {
        try {
          const created = await ds.createEntries(valid.map((v) => v.input));
          created.forEach((e, i) => (results[valid[i]!.index] = create(BatchCreateEntryResponse_ResultSchema, { status: OK, entry: entryToProto(e) })));
          stored = true;
        } catch {
          stored = false;
        }
      }
      if (!stored) {
        for (const v of valid) {
          try {
            results[v.index] = create(BatchCreateEntryResponse_ResultSchema, { status: OK, entry: entryToProto(await ds.createEntry(v.input)) });
          } catch (e) {
            results[v.index] = create(BatchCreateEntryResponse_ResultSchema, { status: statusMsg(e) });
          }
        }
      }
      return { results };
    },
    async batchUpdateEntry(req) {
      batchSize(req.entries.length);
      const mask = req.mask.length > 0 ? (req.mask as EntryField[]) : SETTABLE;
      for (const m of mask) if (!SETTABLE.includes(m)) throw new ConnectError(`unknown field "${m}" in the update mask`, Code.InvalidArgument);
      const results = [];
      for (const pe of req.entries) {
        try {
          const current = await ds.getEntry(pe.id);
          if (!current) throw new ConnectError(`entry "${pe.id}" not found`, Code.NotFound);
          // Validate the entry as it will be after the update.
          const proposed = entryInputFromProto(pe);
          const merged = { ...current, ...Object.fromEntries(mask.map((k) => [k, proposed[k]])) };
          const valid = validateEntryInput(merged, trustDomain);
          const changes = Object.fromEntries(mask.map((k) => [k, valid[k]]));
          const updated = await ds.updateEntry(pe.id, changes, { mask, ...(pe.revisionNumber > 0n ? { expectedRevision: Number(pe.revisionNumber) } : {}) });
          results.push(create(BatchUpdateEntryResponse_ResultSchema, { status: OK, entry: entryToProto(updated) }));
        } catch (e) {
          results.push(create(BatchUpdateEntryResponse_ResultSchema, { status: statusMsg(e) }));
        }
      }
      return { results };
    },
    async batchDeleteEntry(req) {
      batchSize(req.ids.length);
      const results = [];
      for (const id of req.ids) {
        try {
          await ds.deleteEntry(id);
          results.push(create(BatchDeleteEntryResponse_ResultSchema, { status: OK, id }));
        } catch (e) {
          results.push(create(BatchDeleteEntryResponse_ResultSchema, { status: statusMsg(e), id }));
        }
      }
      return { results };
    },
  };
}
