/**
 * Worker thread of {@link CsrVerifyPool}: parses CSRs, imports their keys and
 * verifies their self-signatures (proof of possession, RFC 2986 §3) for a
 * batch, and answers with where each request's SubjectPublicKeyInfo sits in
 * the batch buffer (which it hands back) and the URI SANs asked for. The main
 * thread builds and signs the leaves.
 * @internal
 */
import { parentPort } from 'node:worker_threads';
import { EncodingError } from '@tessera/spiffe/errors';
import { parseCertificateRequest } from '@tessera/spiffe/x509';
import type { VerifyReply, VerifyRequest } from './csr-verify-pool.js';

const port = parentPort;
if (port === null) throw new Error('csr-verify-worker must run in a worker thread');

port.on('message', (m: VerifyRequest) => {
  const { id, buffer, ends } = m;
  const n = ends.length;
  const spki = new Int32Array(2 * n).fill(-1);
  const uris: (readonly string[])[] = [];
  const errors: VerifyReply['errors'][number][] = [];
  const redo: number[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = ends[i]!;
    uris.push([]);
    try {
      const csr = parseCertificateRequest(Buffer.from(buffer, start, end - start));
      const k = csr.subjectPublicKey.spki;
      // The key is a view of the request (see readSubjectPublicKey); anything else is answered on the main thread.
      if (k.buffer === buffer && k.byteOffset >= start && k.byteOffset + k.byteLength <= end) {
        spki[2 * i] = k.byteOffset;
        spki[2 * i + 1] = k.byteOffset + k.byteLength;
        uris[i] = csr.uris;
      } else {
        redo.push(i);
      }
    } catch (e) {
      // Typed errors travel as code + message and are rebuilt as they are; anything unexpected is redone on the main thread.
      if (e instanceof EncodingError) {
        const cause = e.cause instanceof Error ? e.cause.message : undefined;
        errors.push({ index: i, code: e.code as EncodingErrorCode, message: e.message, ...(cause === undefined ? {} : { cause }) });
      } else {
        redo.push(i);
      }
    }
    start = end;
  }
  const reply: VerifyReply = { id, buffer, ends, spki, uris, errors, redo };
  port.postMessage(reply, [buffer, ends.buffer, spki.buffer]);
});

type EncodingErrorCode = ConstructorParameters<typeof EncodingError>[0];
