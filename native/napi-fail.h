/* Throwing from the addons in native/: an Error whose code is the errno, as a string. */
#ifndef LAZYSTORE_NAPI_FAIL_H
#define LAZYSTORE_NAPI_FAIL_H
#include <stdio.h>
#include <string.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *what, int err) {
  char code[32];
  snprintf(code, sizeof code, "%d", err);
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, code, message);
  return NULL;
}

#endif
