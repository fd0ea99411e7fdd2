/*
 * The widest vector the compiler may use under -march=native, for the bench's C loops
 * (bench/peak.c, bench/scaling.c): 512-bit with AVX-512, 256 with AVX, else 128.
 */
#ifndef STREAMGRAD_BENCH_VECTOR_H
#define STREAMGRAD_BENCH_VECTOR_H
#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif
typedef double vd __attribute__((vector_size(VBYTES)));
typedef float vf __attribute__((vector_size(VBYTES)));
#endif
