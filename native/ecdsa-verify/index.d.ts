/** The curves checked: NIST P-256 and P-384 (FIPS 186-4 §D.1.2). */
export type EcdsaCurve = 'P-256' | 'P-384';
/** The digests of ecdsa-with-SHA256/384/512 (RFC 5758 §3.2). */
export type EcdsaHash = 'sha256' | 'sha384' | 'sha512';

/** One ECDSA signature to check. */
export interface EcdsaCheck {
  readonly curve: EcdsaCurve;
  readonly hash: EcdsaHash;
  /** The public key as an uncompressed point, 0x04 ‖ X ‖ Y (SEC 1 §2.3.3). */
  readonly point: Uint8Array;
  /** The signed bytes (hashed with `hash` here). */
  readonly data: Uint8Array;
  /** The DER ECDSA-Sig-Value (RFC 3279 §2.2.3); only its canonical encoding is accepted. */
  readonly signature: Uint8Array;
}

/** Result code: the signature does not verify (or is not canonical DER). */
export declare const BAD_SIGNATURE: 0;
/** Result code: the signature verifies with the key. */
export declare const VALID: 1;
/** Result code: the point is not a valid point of the curve (not on it, wrong length or form). */
export declare const BAD_KEY: 2;
/** Result code: OpenSSL failed for another reason (out of memory); check the signature another way. */
export declare const ERROR: 3;
export type EcdsaResult = 0 | 1 | 2 | 3;

/** True when the addon is built and loadable. */
export declare const available: boolean;
/** Why the addon is not available (`code` ERR_ECDSA_VERIFY_NOT_AVAILABLE), or undefined. */
export declare const loadError: (Error & { code: string }) | undefined;
/** Path of the loaded .node file, or undefined. */
export declare const addonPath: string | undefined;

/**
 * Checks the signatures on the calling thread. One result code per check, in order.
 * @throws TypeError for malformed checks; the load error when the addon is not available.
 */
export declare function verifyEcdsa(checks: readonly EcdsaCheck[]): Uint8Array;
/**
 * Checks the signatures on libuv's thread pool (the inputs are copied first, so
 * the caller's buffers may change meanwhile). One result code per check, in order.
 * @throws TypeError for malformed checks (synchronously); the load error when the addon is not available.
 */
export declare function verifyEcdsaAsync(checks: readonly EcdsaCheck[]): Promise<Uint8Array>;
