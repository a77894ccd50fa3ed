/*
 * The two ioctls of FUSE passthrough (Linux 6.9+), which Node cannot issue itself:
 * register an open file as the backing file of a FUSE connection, and drop it again.
 * Everything else about the FUSE protocol lives in TypeScript (src/fuse/kernel/).
 */
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <node_api.h>
#include "napi-fail.h"

struct backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};

#define DEV_IOC_MAGIC 229
#define DEV_IOC_BACKING_OPEN _IOW(DEV_IOC_MAGIC, 1, struct backing_map)
#define DEV_IOC_BACKING_CLOSE _IOW(DEV_IOC_MAGIC, 2, uint32_t)

static int int_args(napi_env env, napi_callback_info info, int32_t *a, int32_t *b) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return -1;
  if (napi_get_value_int32(env, argv[0], a) != napi_ok) return -1;
  if (napi_get_value_int32(env, argv[1], b) != napi_ok) return -1;
  return 0;
}

/* backingOpen(devFd, fileFd) -> backing id */
static napi_value backing_open(napi_env env, napi_callback_info info) {
  int32_t dev, fd;
  if (int_args(env, info, &dev, &fd) != 0) return fail(env, "backingOpen(devFd, fileFd)", EINVAL);
  struct backing_map map = {.fd = fd, .flags = 0, .padding = 0};
  int id = ioctl(dev, DEV_IOC_BACKING_OPEN, &map);
  if (id < 0) return fail(env, "FUSE_DEV_IOC_BACKING_OPEN", errno);
  napi_value out;
  napi_create_int32(env, id, &out);
  return out;
}

/* backingClose(devFd, id) */
static napi_value backing_close(napi_env env, napi_callback_info info) {
  int32_t dev, id;
  if (int_args(env, info, &dev, &id) != 0) return fail(env, "backingClose(devFd, id)", EINVAL);
  uint32_t arg = (uint32_t)id;
  if (ioctl(dev, DEV_IOC_BACKING_CLOSE, &arg) < 0) return fail(env, "FUSE_DEV_IOC_BACKING_CLOSE", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"backingOpen", NULL, backing_open, NULL, NULL, NULL, napi_default, NULL},
    {"backingClose", NULL, backing_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
