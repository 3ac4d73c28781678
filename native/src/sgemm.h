// Single-precision matrix products and the fused Adam update for Distillery's native tfjs kernels.
#pragma once

namespace dn {

// C (M x N) = op(A) (M x K) * op(B) (K x N), all row-major and dense. op(A) = A, or (K x M) A
// transposed when ta; op(B) = B, or (N x K) B transposed when tb. C is overwritten.
struct Gemm {
  int M, N, K;
  const float* a;
  const float* b;
  float* c;
  bool ta, tb;
  // Threads to split a large product between (the caller's share of the machine).
  int threads;
};

void sgemm(const Gemm& g);

// C[i, j] = act(C[i, j] + bias[j]); bias may be null. act: 0 linear, 1 relu, 2 relu6, 3 leaky relu (alpha).
void bias_act(float* c, const float* bias, int M, int N, int act, float alpha);

// out = p - lr * mh / (sqrt(vh) + eps) with m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2 (in place),
// mh = m * c1, vh = v * c2 (c1 = 1 / (1 - b1^t), c2 = 1 / (1 - b2^t)): tfjs's AdamOptimizer in one pass.
void adam(long n, const float* p, const float* g, float* m, float* v, float* out, float lr, float b1, float b2,
          float eps, float c1, float c2);

// out[i] = exp(x[i]) (x and out may be the same array). The AVX2 path is Cephes' expf (range reduction
// by ln 2 in two parts, a degree-6 polynomial; within 2 ulp of std::exp), 0 below ln(FLT_MIN) and inf above
// ln(FLT_MAX); the tail and the generic path call std::exp.
void exp(long n, const float* x, float* out);

// Threads worth using on this machine: DISTILLERY_THREADS, else the hardware threads (at most 8).
int default_threads();
// "avx2+fma" or "generic": which micro-kernel the CPU check chose.
const char* isa();

}  // namespace dn
