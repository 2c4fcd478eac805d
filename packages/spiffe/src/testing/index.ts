/**
 * Test helpers: an in-code CA minting SVIDs, chains, JWT-SVIDs and broken
 * variants, for this project's tests and for users' tests.
 * @module
 */
export { TestCa, X509_SVID_DEFECTS, type TestCaOptions, type TestCertificateOptions, type TestX509Fixture, type X509SvidDefect } from './test-ca.js';
export { generateKey, type TestKeyType } from './keys.js';
export {
  createJwtSvid,
  createBrokenJwtSvid,
  JWT_SVID_DEFECTS,
  JWT_SVID_TEST_AUDIENCE,
  type JwtSvidDefect,
  type TestJwtSvidOptions,
  type BrokenJwtSvidOptions,
} from './jwt-fixtures.js';
