// ECDSA signature checks (P-256, P-384; SHA-256/384/512) for a CA's hot path:
// proof of possession of the keys in certification requests. node:crypto needs
// a KeyObject per key, and importing a never-seen key costs OpenSSL 3.0's
// decoder framework as much as the verification itself; here the point goes
// straight into an EC_KEY on a shared group, and batches run on libuv's
// thread pool.
//
// Calls (all arguments come from index.js, which packs them):
//   verify(desc: Uint32Array, data: Uint8Array) -> Uint8Array
//   verifyAsync(desc, data) -> Promise<Uint8Array>
// desc holds 8 words per check: curve (1 = P-256, 2 = P-384), hash (1 = SHA-256,
// 2 = SHA-384, 3 = SHA-512), then offset and length in data of the public
// point (uncompressed, 0x04 || X || Y), of the signed bytes, and of the DER
// ECDSA-Sig-Value. One result byte per check: see the RESULT_ constants.
//
// The point is checked to lie on the curve (EC_KEY_oct2key) and the signature
// must be the canonical DER encoding (ECDSA_verify re-encodes and compares),
// as OpenSSL does behind crypto.verify.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>

enum { RESULT_BAD_SIGNATURE = 0, RESULT_VALID = 1, RESULT_BAD_KEY = 2, RESULT_ERROR = 3 };
enum { CURVE_P256 = 1, CURVE_P384 = 2 };
enum { HASH_SHA256 = 1, HASH_SHA384 = 2, HASH_SHA512 = 3 };
#define WORDS 8
#define MAX_CHECKS (1u << 20)

static pthread_once_t groups_once = PTHREAD_ONCE_INIT;
static EC_GROUP* groups[3];

static void make_groups(void) {
  groups[CURVE_P256] = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  groups[CURVE_P384] = EC_GROUP_new_by_curve_name(NID_secp384r1);
}

// One check; desc words already validated against the data length.
static uint8_t check_one(const uint32_t* d, const uint8_t* data) {
  uint32_t curve = d[0], hash = d[1];
  const uint8_t* point = data + d[2];
  const uint8_t* msg = data + d[4];
  const uint8_t* sig = data + d[6];
  size_t coord = curve == CURVE_P256 ? 32 : 48;
  if (d[3] != 1 + 2 * coord || point[0] != 0x04) return RESULT_BAD_KEY;  // length first: an empty point is never read
  unsigned char digest[SHA512_DIGEST_LENGTH];
  size_t digest_len;
  switch (hash) {
    case HASH_SHA256: SHA256(msg, d[5], digest); digest_len = SHA256_DIGEST_LENGTH; break;
    case HASH_SHA384: SHA384(msg, d[5], digest); digest_len = SHA384_DIGEST_LENGTH; break;
    default: SHA512(msg, d[5], digest); digest_len = SHA512_DIGEST_LENGTH; break;
  }
  EC_KEY* key = EC_KEY_new();
  if (key == NULL) return RESULT_ERROR;
  uint8_t result;
  if (EC_KEY_set_group(key, groups[curve]) != 1) {
    result = RESULT_ERROR;
  } else if (EC_KEY_oct2key(key, point, d[3], NULL) != 1 || EC_POINT_is_at_infinity(groups[curve], EC_KEY_get0_public_key(key))) {
    result = RESULT_BAD_KEY;
  } else {
    result = ECDSA_verify(0, digest, (int)digest_len, sig, (int)d[7], key) == 1 ? RESULT_VALID : RESULT_BAD_SIGNATURE;
  }
  EC_KEY_free(key);
  ERR_clear_error();  // this thread's OpenSSL error queue: nothing may leak into Node's next crypto call
  return result;
}

static void check_all(const uint32_t* desc, size_t n, const uint8_t* data, uint8_t* out) {
  for (size_t i = 0; i < n; i++) out[i] = check_one(desc + WORDS * i, data);
}

// Reads and validates (desc, data). On failure a TypeError/RangeError is pending and 0 is returned.
static int read_args(napi_env env, napi_callback_info info, uint32_t** desc, size_t* n, uint8_t** data, size_t* data_len) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (desc: Uint32Array, data: Uint8Array)");
    return 0;
  }
  bool is_typed;
  napi_typedarray_type type;
  size_t len;
  void* ptr;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &len, &ptr, &ab, &off) != napi_ok || type != napi_uint32_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "desc must be a Uint32Array");
    return 0;
  }
  if (len % WORDS != 0 || len / WORDS > MAX_CHECKS) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "desc must hold 8 words per check, at most 2^20 checks");
    return 0;
  }
  *desc = ptr;
  *n = len / WORDS;
  if (napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[1], &type, &len, &ptr, &ab, &off) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Uint8Array");
    return 0;
  }
  *data = ptr;
  *data_len = len;
  for (size_t i = 0; i < *n; i++) {
    const uint32_t* d = *desc + WORDS * i;
    int ok = (d[0] == CURVE_P256 || d[0] == CURVE_P384) && d[1] >= HASH_SHA256 && d[1] <= HASH_SHA512 && d[7] <= INT32_MAX;
    for (int f = 2; ok && f < WORDS; f += 2) ok = (uint64_t)d[f] + d[f + 1] <= len;
    if (!ok) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "desc: unknown curve or hash, or a range outside data");
      return 0;
    }
  }
  return 1;
}

static napi_value Verify(napi_env env, napi_callback_info info) {
  uint32_t* desc;
  uint8_t* data;
  size_t n, data_len;
  if (!read_args(env, info, &desc, &n, &data, &data_len)) return NULL;
  void* out;
  napi_value buf;
  if (napi_create_buffer(env, n, &out, &buf) != napi_ok) return NULL;
  check_all(desc, n, data, out);
  return buf;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  uint32_t* desc;  // private copies: JavaScript may reuse its buffers meanwhile
  uint8_t* data;
  uint8_t* out;
  size_t n;
} Job;

static void job_free(napi_env env, Job* job) {
  if (job->work != NULL) napi_delete_async_work(env, job->work);
  free(job->desc);
  free(job->data);
  free(job->out);
  free(job);
}

static void execute(napi_env env, void* p) {
  (void)env;
  Job* job = p;
  check_all(job->desc, job->n, job->data, job->out);
}

static void complete(napi_env env, napi_status status, void* p) {
  Job* job = p;
  napi_value result;
  void* copy;
  if (status == napi_ok && napi_create_buffer_copy(env, job->n, job->out, &copy, &result) == napi_ok) {
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    napi_value msg, err;
    napi_create_string_utf8(env, status == napi_cancelled ? "ECDSA verification cancelled" : "ECDSA verification failed", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, job->deferred, err);
  }
  job_free(env, job);
}

static napi_value VerifyAsync(napi_env env, napi_callback_info info) {
  uint32_t* desc;
  uint8_t* data;
  size_t n, data_len;
  if (!read_args(env, info, &desc, &n, &data, &data_len)) return NULL;
  Job* job = calloc(1, sizeof *job);
  if (job != NULL) {
    job->n = n;
    job->desc = malloc(n * WORDS * sizeof(uint32_t) + 1);
    job->data = malloc(data_len + 1);
    job->out = malloc(n + 1);
  }
  if (job == NULL || job->desc == NULL || job->data == NULL || job->out == NULL) {
    if (job != NULL) job_free(env, job);
    napi_throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "out of memory");
    return NULL;
  }
  memcpy(job->desc, desc, n * WORDS * sizeof(uint32_t));
  memcpy(job->data, data, data_len);
  napi_value promise, name;
  napi_create_string_utf8(env, "tessera.ecdsaVerify", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    job_free(env, job);  // a promise made but never settled is garbage once unreferenced
    napi_throw_error(env, NULL, "could not queue the ECDSA verification");
    return NULL;
  }
  return promise;
}

NAPI_MODULE_INIT() {
  pthread_once(&groups_once, make_groups);
  if (groups[CURVE_P256] == NULL || groups[CURVE_P384] == NULL) {
    napi_throw_error(env, NULL, "OpenSSL has no P-256/P-384 group");
    return NULL;
  }
  napi_value fn;
  napi_create_function(env, "verify", NAPI_AUTO_LENGTH, Verify, NULL, &fn);
  napi_set_named_property(env, exports, "verify", fn);
  napi_create_function(env, "verifyAsync", NAPI_AUTO_LENGTH, VerifyAsync, NULL, &fn);
  napi_set_named_property(env, exports, "verifyAsync", fn);
  return exports;
}
