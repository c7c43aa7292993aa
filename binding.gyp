{
  "targets": [
    {
      "target_name": "courier_native",
      "sources": ["native/sched_slice.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
