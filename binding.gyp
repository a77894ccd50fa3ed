{
  "targets": [
    {
      "target_name": "fuse_backing",
      "sources": ["native/fuse_backing.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
