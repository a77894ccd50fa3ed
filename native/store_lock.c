/*
 * Store locks taken without the event loop (src/store/store-lock.ts): a lock is a listening
 * Unix socket in Linux's abstract namespace, and Node can only bind one through net.Server,
 * whose handle set-up and close cost ~20 µs a lock — a tenth of substituting a small path.
 * Here it is socket, bind and listen, and close to let go; the address is the one net.Server
 * binds for the same name, so processes with and without this addon exclude each other.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <node_api.h>
#include "napi-fail.h"

/* lockTake(name: Buffer) -> fd, or -1 when another socket holds the name. `name` is the whole
 * abstract address, its leading NUL included, as net.Server is given it. */
static napi_value lock_take(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok)
    return fail(env, "lockTake(name)", EINVAL);
  struct sockaddr_un addr;
  if (len < 2 || len > sizeof addr.sun_path || ((const char *)data)[0] != '\0') return fail(env, "lockTake(name)", EINVAL);
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, data, len);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(env, "socket", errno);
  int result = fd;
  /* The whole sockaddr_un, the name padded with NULs: the address Node 20's net.Server (libuv's
   * uv_pipe_bind) binds for the same name. test/store/store-lock.test.ts checks they collide. */
  if (bind(fd, (struct sockaddr *)&addr, (socklen_t)sizeof addr) < 0) {
    int err = errno;
    close(fd);
    if (err != EADDRINUSE) return fail(env, "bind", err);
    result = -1;
  } else if (listen(fd, 511) < 0) {
    int err = errno;
    close(fd);
    return fail(env, "listen", err);
  }
  napi_value out;
  napi_create_int32(env, result, &out);
  return out;
}

/* lockRelease(fd): close the socket; waiters connected to it see the connection end. */
static napi_value lock_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok)
    return fail(env, "lockRelease(fd)", EINVAL);
  if (close(fd) < 0) return fail(env, "close", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"lockTake", NULL, lock_take, NULL, NULL, NULL, napi_default, NULL},
    {"lockRelease", NULL, lock_release, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
