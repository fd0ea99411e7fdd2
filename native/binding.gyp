{
  "targets": [
    {
      "target_name": "streamgrad_native",
      "sources": [
        "src/addon.c",
        "src/kernels.c",
        "src/gemm-avx512.c",
        "src/gemm-avx2.c",
        "src/gemm-sse2.c"
      ],
      "cflags": ["-O3", "-std=gnu11", "-fno-strict-aliasing", "-Wall"],
      "cflags!": ["-O2"],
      "xcode_settings": { "OTHER_CFLAGS": ["-O3", "-std=gnu11"] },
      "libraries": ["-lm", "-lpthread"]
    }
  ]
}
