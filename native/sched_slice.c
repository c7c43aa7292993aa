// Courier's one native function: ask Linux for a shorter time slice for the calling thread.
//
// Since Linux 6.12 the fair scheduler (EEVDF) lets a SCHED_OTHER or SCHED_BATCH thread ask for the
// length of its time slice with sched_setattr(2) (`sched_runtime`, 0.1 to 100 ms). A shorter slice
// does not give a thread more CPU; it gives it an earlier deadline each time it wakes, so a thread
// that runs in short bursts (a sidecar relaying calls) is run sooner after it wakes, instead of
// waiting behind the running thread's whole slice. Older kernels ignore the field.
#include <node_api.h>
#include <stdio.h>
#include <string.h>

#ifdef __linux__
#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

// The kernel's struct sched_attr (include/uapi/linux/sched/types.h), first version (56 bytes):
// glibc does not declare it.
struct courier_sched_attr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

#define COURIER_SCHED_OTHER 0
#define COURIER_SCHED_BATCH 3
#endif

static napi_value throw_errno(napi_env env, const char* what, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

// setSlice(ns: number): number
// Asks for a slice of `ns` nanoseconds for the calling thread, keeping its policy and nice value,
// and returns the slice the kernel then reports (0 when it does not keep one for this thread: a
// kernel before 6.12, or a policy other than SCHED_OTHER and SCHED_BATCH, which is left alone).
static napi_value set_slice(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t ns = 0;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &ns) != napi_ok || ns < 0) {
    napi_throw_type_error(env, NULL, "setSlice takes a number of nanoseconds");
    return NULL;
  }
  double reported = 0;
#ifdef __linux__
  struct courier_sched_attr attr;
  memset(&attr, 0, sizeof attr);
  if (syscall(SYS_sched_getattr, 0, &attr, (unsigned int)sizeof attr, 0U) != 0) return throw_errno(env, "sched_getattr", errno);
  if (attr.sched_policy == COURIER_SCHED_OTHER || attr.sched_policy == COURIER_SCHED_BATCH) {
    attr.size = sizeof attr;
    attr.sched_flags = 0;
    attr.sched_runtime = (uint64_t)ns;
    if (syscall(SYS_sched_setattr, 0, &attr, 0U) != 0) return throw_errno(env, "sched_setattr", errno);
    memset(&attr, 0, sizeof attr);
    if (syscall(SYS_sched_getattr, 0, &attr, (unsigned int)sizeof attr, 0U) != 0) return throw_errno(env, "sched_getattr", errno);
    reported = (double)attr.sched_runtime;
  }
#endif
  napi_value result;
  napi_create_double(env, reported, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "setSlice", NAPI_AUTO_LENGTH, set_slice, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "setSlice", fn) != napi_ok) return NULL;
  return exports;
}
