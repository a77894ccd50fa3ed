{
  "targets": [
    {
      "target_name": "fuse_backing",
      "sources": ["native/fuse_backing.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "store_lock",
      "sources": ["native/store_lock.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
