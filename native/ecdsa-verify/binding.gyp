{
  "targets": [
    {
      "target_name": "ecdsa_verify",
      "sources": ["ecdsa_verify.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
