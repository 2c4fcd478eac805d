/**
 * X509-SVIDs and JWT-SVIDs: parsing, verification and validation
 * (X509-SVID, JWT-SVID specifications).
 * @module
 */
export { X509Svid, type X509SvidSource } from './x509-svid.js';
export { verifyX509Svid, type X509VerifyOptions, type VerifiedX509Svid } from './x509-verify.js';
export { parsePrivateKey } from './private-key.js';
export { JwtSvid, signJwtSvid, type JwtSvidAlgorithm, type JwtSvidValidationOptions, type JwtSvidSignOptions } from './jwt-svid.js';
