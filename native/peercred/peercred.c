// getPeerCred(fd) -> { pid, uid, gid }: the credentials the kernel recorded for
// the peer of a connected Unix socket when it called connect(2) (SO_PEERCRED,
// see unix(7)). Errors are thrown with `code` = errno name and `errno` = number.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, int err, const char* syscall) {
  const char* name = err == EBADF ? "EBADF" : err == ENOTSOCK ? "ENOTSOCK" : err == EINVAL ? "EINVAL" : err == ENOTCONN ? "ENOTCONN" : err == ENOPROTOOPT ? "ENOPROTOOPT" : "EPEERCRED";
  napi_value msg, code, error, num;
  char buf[160];
  snprintf(buf, sizeof buf, "%s failed: %s (%s)", syscall, strerror(err), name);
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err, &num);  // negative, like libuv / Node's SystemError.errno
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &msg);
  napi_set_named_property(env, error, "syscall", msg);
  napi_throw(env, error);
  return NULL;
}

static napi_value GetPeerCred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, v;
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "getPeerCred(fd): fd must be a non-negative integer file descriptor");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
  napi_create_object(env, &result);
  napi_create_int32(env, cred.pid, &v);  napi_set_named_property(env, result, "pid", v);
  napi_create_uint32(env, cred.uid, &v); napi_set_named_property(env, result, "uid", v);
  napi_create_uint32(env, cred.gid, &v); napi_set_named_property(env, result, "gid", v);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "getPeerCred", NAPI_AUTO_LENGTH, GetPeerCred, NULL, &fn);
  napi_set_named_property(env, exports, "getPeerCred", fn);
  return exports;
}
