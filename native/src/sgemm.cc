// A cache-blocked SGEMM in the style of BLIS/GotoBLAS: B is packed into KC x NR slivers (kept in L1 by
// the micro-kernel), A into MC x KC blocks of MR-row slivers (kept in L2); transposed operands are
// absorbed by the packing, so op(A) op(B) costs the same for every flag. The 6x16 micro-kernel uses
// AVX2 + FMA when the CPU has them (checked at run time) and a portable loop otherwise. Large products
// are split between threads of a small persistent pool, by rows or columns of C.
#include "sgemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DN_X86 1
#endif

namespace dn {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;
constexpr int KC = 256;
constexpr int MC = 144;
constexpr int NC = 2048;

// ---------------------------------------------------------------------------------------------------
// Micro-kernels: C (MR x NR, row stride ldc) (+)= Ap (kc x MR packed) * Bp (kc x NR packed).

void kernel_generic(int kc, const float* __restrict A, const float* __restrict B, float* __restrict C, int ldc,
                    bool accumulate) {
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; k++) {
    for (int r = 0; r < MR; r++) {
      const float a = A[r];
      for (int j = 0; j < NR; j++) acc[r][j] += a * B[j];
    }
    A += MR;
    B += NR;
  }
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < NR; j++) C[r * ldc + j] = accumulate ? C[r * ldc + j] + acc[r][j] : acc[r][j];
}

#ifdef DN_X86
__attribute__((target("avx2,fma"))) void kernel_avx2(int kc, const float* __restrict A, const float* __restrict B,
                                                     float* __restrict C, int ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(B);
    const __m256 b1 = _mm256_load_ps(B + 8);
    __m256 a;
    a = _mm256_broadcast_ss(A + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(A + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(A + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(A + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(A + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(A + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    A += MR;
    B += NR;
  }
#define DN_PUT(p, v) _mm256_storeu_ps((p), accumulate ? _mm256_add_ps(_mm256_loadu_ps(p), (v)) : (v))
  DN_PUT(C + 0 * ldc, c00);
  DN_PUT(C + 0 * ldc + 8, c01);
  DN_PUT(C + 1 * ldc, c10);
  DN_PUT(C + 1 * ldc + 8, c11);
  DN_PUT(C + 2 * ldc, c20);
  DN_PUT(C + 2 * ldc + 8, c21);
  DN_PUT(C + 3 * ldc, c30);
  DN_PUT(C + 3 * ldc + 8, c31);
  DN_PUT(C + 4 * ldc, c40);
  DN_PUT(C + 4 * ldc + 8, c41);
  DN_PUT(C + 5 * ldc, c50);
  DN_PUT(C + 5 * ldc + 8, c51);
#undef DN_PUT
}
#endif

using Kernel = void (*)(int, const float*, const float*, float*, int, bool);

bool has_avx2() {
#ifdef DN_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && std::getenv("DISTILLERY_NATIVE_GENERIC") == nullptr;
#else
  return false;
#endif
}

const bool use_avx2 = has_avx2();
const Kernel kernel =
#ifdef DN_X86
    use_avx2 ? kernel_avx2 :
#endif
             kernel_generic;

// ---------------------------------------------------------------------------------------------------
// Packing. op(A)(i, k) and op(B)(k, j) in terms of the row-major operands.

// Rows [i0, i0 + mc) and depth [k0, k0 + kc) of op(A) -> ceil(mc / MR) slivers of kc x MR, zero-padded.
void pack_a(const Gemm& g, int i0, int mc, int k0, int kc, float* dst) {
  for (int i = 0; i < mc; i += MR) {
    const int mr = std::min(MR, mc - i);
    if (g.ta) {
      // op(A)(i, k) = a[k * M + i]: MR consecutive floats per k.
      for (int k = 0; k < kc; k++) {
        const float* src = g.a + (long)(k0 + k) * g.M + i0 + i;
        int r = 0;
        for (; r < mr; r++) dst[k * MR + r] = src[r];
        for (; r < MR; r++) dst[k * MR + r] = 0.f;
      }
    } else {
      // op(A)(i, k) = a[i * K + k]: read each row along k.
      for (int r = 0; r < MR; r++) {
        if (r < mr) {
          const float* src = g.a + (long)(i0 + i + r) * g.K + k0;
          for (int k = 0; k < kc; k++) dst[k * MR + r] = src[k];
        } else {
          for (int k = 0; k < kc; k++) dst[k * MR + r] = 0.f;
        }
      }
    }
    dst += (long)kc * MR;
  }
}

// Depth [k0, k0 + kc) and columns [j0, j0 + nc) of op(B) -> ceil(nc / NR) slivers of kc x NR, zero-padded.
void pack_b(const Gemm& g, int k0, int kc, int j0, int nc, float* dst) {
  for (int j = 0; j < nc; j += NR) {
    const int nr = std::min(NR, nc - j);
    if (g.tb) {
      // op(B)(k, j) = b[j * K + k]: read each column of op(B) along k.
      for (int c = 0; c < NR; c++) {
        if (c < nr) {
          const float* src = g.b + (long)(j0 + j + c) * g.K + k0;
          for (int k = 0; k < kc; k++) dst[k * NR + c] = src[k];
        } else {
          for (int k = 0; k < kc; k++) dst[k * NR + c] = 0.f;
        }
      }
    } else {
      // op(B)(k, j) = b[k * N + j]: NR consecutive floats per k.
      for (int k = 0; k < kc; k++) {
        const float* src = g.b + (long)(k0 + k) * g.N + j0 + j;
        if (nr == NR) {
          std::memcpy(dst + k * NR, src, NR * sizeof(float));
        } else {
          int c = 0;
          for (; c < nr; c++) dst[k * NR + c] = src[c];
          for (; c < NR; c++) dst[k * NR + c] = 0.f;
        }
      }
    }
    dst += (long)kc * NR;
  }
}

float* aligned_floats(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, n * sizeof(float)) != 0) return nullptr;
  return static_cast<float*>(p);
}

// Per-thread packing buffers, kept between calls.
struct Buffers {
  float* a = nullptr;
  float* b = nullptr;
  Buffers() {
    a = aligned_floats((size_t)MC * KC);
    b = aligned_floats((size_t)KC * (NC + NR));
  }
  ~Buffers() {
    std::free(a);
    std::free(b);
  }
};

Buffers& buffers() {
  thread_local Buffers buf;
  return buf;
}

// C[m0:m1, n0:n1] = op(A)[m0:m1, :] op(B)[:, n0:n1].
void gemm_block(const Gemm& g, int m0, int m1, int n0, int n1) {
  Buffers& buf = buffers();
  const int ldc = g.N;
  alignas(64) float tmp[MR * NR];
  for (int jc = n0; jc < n1; jc += NC) {
    const int nc = std::min(NC, n1 - jc);
    for (int pc = 0; pc < g.K; pc += KC) {
      const int kc = std::min(KC, g.K - pc);
      const bool accumulate = pc > 0;
      pack_b(g, pc, kc, jc, nc, buf.b);
      for (int ic = m0; ic < m1; ic += MC) {
        const int mc = std::min(MC, m1 - ic);
        pack_a(g, ic, mc, pc, kc, buf.a);
        for (int jr = 0; jr < nc; jr += NR) {
          const int nr = std::min(NR, nc - jr);
          const float* bp = buf.b + (long)(jr / NR) * kc * NR;
          for (int ir = 0; ir < mc; ir += MR) {
            const int mr = std::min(MR, mc - ir);
            const float* ap = buf.a + (long)(ir / MR) * kc * MR;
            float* c = g.c + (long)(ic + ir) * ldc + jc + jr;
            if (mr == MR && nr == NR) {
              kernel(kc, ap, bp, c, ldc, accumulate);
            } else {
              kernel(kc, ap, bp, tmp, NR, false);
              for (int r = 0; r < mr; r++)
                for (int j = 0; j < nr; j++) c[r * ldc + j] = accumulate ? c[r * ldc + j] + tmp[r * NR + j] : tmp[r * NR + j];
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// A small persistent thread pool. Workers spin briefly after a job (products come in quick
// succession during a training step), then sleep on a condition variable. One caller at a time:
// a second concurrent caller (another worker_thread of the process) runs its product alone.

class Pool {
 public:
  // Runs task(0..n-1), task 0 on the calling thread; false if the pool is busy.
  bool run(int n, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    grow(n - 1);
    task_ = &task;
    tasks_ = n;
    pending_.store(n - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    task(0);
    while (pending_.load(std::memory_order_acquire) > 0) pause();
    task_ = nullptr;
    return true;
  }

 private:
  static void pause() {
#ifdef DN_X86
    _mm_pause();
#else
    std::this_thread::yield();
#endif
  }

  void grow(int workers) {
    while ((int)count_ < workers) {
      const int id = (int)count_ + 1;
      // The worker starts from the generation before this job's, so it cannot miss the job.
      const uint64_t seen = gen_.load(std::memory_order_acquire);
      // Detached: the pool lives as long as the process and is never torn down.
      std::thread([this, id, seen] { loop(id, seen); }).detach();
      count_++;
    }
  }

  void loop(int id, uint64_t seen) {
    for (;;) {
      const auto start = std::chrono::steady_clock::now();
      uint64_t now;
      int spins = 0;
      while ((now = gen_.load(std::memory_order_acquire)) == seen) {
        pause();
        if (++spins % 256 == 0 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(300)) {
          std::unique_lock<std::mutex> lk(m_);
          cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
        }
      }
      seen = now;
      if (id < tasks_) {
        (*task_)(id);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::mutex busy_;
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* task_ = nullptr;
  int tasks_ = 0;
  unsigned count_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers may still be parked at exit
  return *p;
}

}  // namespace

int default_threads() {
  const char* env = std::getenv("DISTILLERY_THREADS");
  if (env != nullptr && std::atoi(env) >= 1) return std::atoi(env);
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : (int)std::min(hw, 8u);
}

namespace {

// Below this many multiply-adds a product is not worth splitting: each thread packs the whole of the
// operand it does not split, which for a 128 x 784 x 128 product (a student MLP's first layer) costs
// about what the thread saves. Measured: threads from 2^20 made the student 30% slower, the
// 784-512-512-10 MLP (products of 2^25 and up) 15% faster.
constexpr double kParallelMacs = 1 << 24;

}  // namespace

const char* isa() { return use_avx2 ? "avx2+fma" : "generic"; }

void sgemm(const Gemm& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {
    std::memset(g.c, 0, sizeof(float) * (size_t)g.M * g.N);
    return;
  }
  const double macs = (double)g.M * g.N * g.K;
  int t = std::max(1, std::min(g.threads, 64));
  if (macs < kParallelMacs) t = 1;
  // Split the larger side of C into t parts, each a whole number of micro-tiles.
  const bool byRows = g.M >= g.N;
  const int side = byRows ? g.M : g.N;
  const int unit = byRows ? MR : NR;
  t = std::min(t, (side + unit - 1) / unit);
  if (t > 1) {
    const int tiles = (side + unit - 1) / unit;
    auto part = [&](int i) {
      const int from = std::min(side, tiles * i / t * unit);
      const int to = std::min(side, tiles * (i + 1) / t * unit);
      if (from >= to) return;
      if (byRows) gemm_block(g, from, to, 0, g.N);
      else gemm_block(g, 0, g.M, from, to);
    };
    if (pool().run(t, part)) return;
  }
  gemm_block(g, 0, g.M, 0, g.N);
}

void bias_act(float* c, const float* bias, int M, int N, int act, float alpha) {
  for (int i = 0; i < M; i++) {
    float* row = c + (long)i * N;
    if (bias != nullptr)
      for (int j = 0; j < N; j++) row[j] += bias[j];
    switch (act) {
      case 1:
        for (int j = 0; j < N; j++) row[j] = row[j] > 0.f ? row[j] : 0.f;
        break;
      case 2:
        for (int j = 0; j < N; j++) row[j] = std::min(6.f, std::max(0.f, row[j]));
        break;
      case 3:
        for (int j = 0; j < N; j++) row[j] = row[j] > 0.f ? row[j] : alpha * row[j];
        break;
      default:
        break;
    }
  }
}

namespace {
template <int unused>
inline void adam_loop(long n, const float* p, const float* g, float* m, float* v, float* out, float lr, float b1,
                      float b2, float eps, float c1, float c2) {
  const float a1 = 1.f - b1, a2 = 1.f - b2;
  for (long i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = b1 * m[i] + a1 * gi;
    const float vi = b2 * v[i] + a2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    out[i] = p[i] - lr * (mi * c1) / (std::sqrt(vi * c2) + eps);
  }
}
#ifdef DN_X86
__attribute__((target("avx2,fma"))) void adam_avx2(long n, const float* p, const float* g, float* m, float* v,
                                                   float* out, float lr, float b1, float b2, float eps, float c1,
                                                   float c2) {
  adam_loop<0>(n, p, g, m, v, out, lr, b1, b2, eps, c1, c2);
}
#endif
}  // namespace

namespace {
void exp_loop(long from, long n, const float* x, float* out) {
  for (long i = from; i < n; i++) out[i] = std::exp(x[i]);
}
#ifdef DN_X86
__attribute__((target("avx2,fma"))) void exp_avx2(long n, const float* x, float* out) {
  const __m256 hi = _mm256_set1_ps(88.72283935546875f);  // ln(FLT_MAX): above, inf
  const __m256 lo = _mm256_set1_ps(-87.33654022216797f);  // ln(FLT_MIN): below, 0
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
  const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
  const __m256 p0 = _mm256_set1_ps(1.9875691500e-4f), p1 = _mm256_set1_ps(1.3981999507e-3f),
               p2 = _mm256_set1_ps(8.3334519073e-3f), p3 = _mm256_set1_ps(4.1665795894e-2f),
               p4 = _mm256_set1_ps(1.6666665459e-1f), p5 = _mm256_set1_ps(5.0000001201e-1f);
  const __m256 one = _mm256_set1_ps(1.f), inf = _mm256_set1_ps(INFINITY), zero = _mm256_setzero_ps();
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 xc = _mm256_max_ps(_mm256_min_ps(v, hi), lo);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, ln2_hi, xc);
    r = _mm256_fnmadd_ps(k, ln2_lo, r);
    __m256 y = _mm256_fmadd_ps(p0, r, p1);
    y = _mm256_fmadd_ps(y, r, p2);
    y = _mm256_fmadd_ps(y, r, p3);
    y = _mm256_fmadd_ps(y, r, p4);
    y = _mm256_fmadd_ps(y, r, p5);
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
    // 2^k in two factors, so that k = 128 (x just below ln(FLT_MAX)) stays finite.
    const __m256i ki = _mm256_cvtps_epi32(k);
    const __m256i half = _mm256_srai_epi32(ki, 1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ki, half), _mm256_set1_epi32(127)), 23));
    y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
    y = _mm256_blendv_ps(y, inf, _mm256_cmp_ps(v, hi, _CMP_GT_OQ));
    y = _mm256_blendv_ps(y, zero, _mm256_cmp_ps(v, lo, _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));  // NaN stays NaN
    _mm256_storeu_ps(out + i, y);
  }
  exp_loop(i, n, x, out);
}
#endif
}  // namespace

void exp(long n, const float* x, float* out) {
#ifdef DN_X86
  if (use_avx2) return exp_avx2(n, x, out);
#endif
  exp_loop(0, n, x, out);
}

void adam(long n, const float* p, const float* g, float* m, float* v, float* out, float lr, float b1, float b2,
          float eps, float c1, float c2) {
#ifdef DN_X86
  if (use_avx2) return adam_avx2(n, p, g, m, v, out, lr, b1, b2, eps, c1, c2);
#endif
  adam_loop<1>(n, p, g, m, v, out, lr, b1, b2, eps, c1, c2);
}

}  // namespace dn
