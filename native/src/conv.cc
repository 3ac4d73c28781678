// Convolutions as matrix products: im2col lays each output position's KH x KW x C input patch out as
// one row, so the forward pass is cols (B·HO·WO, KH·KW·C) x W (KH·KW·C, CO), the filter gradient is
// colsᵀ dy, and the input gradient is dy Wᵀ scattered back (col2im). NHWC keeps every patch row a
// few contiguous runs of C floats.
#include "conv.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "sgemm.h"

namespace dn {
namespace {

// Reused between calls on this thread: the cols matrix is the largest buffer (B·HO·WO·KH·KW·C floats).
std::vector<float>& scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

long patch(const ConvShape& s) { return (long)s.KH * s.KW * s.C; }
long positions(const ConvShape& s) { return (long)s.B * s.HO * s.WO; }

void im2col(const ConvShape& s, const float* x, float* cols) {
  const long K = patch(s);
  const int run = s.KW * s.C;  // one filter row of a patch: contiguous in x when it lies inside the image
  for (int b = 0; b < s.B; b++)
    for (int oh = 0; oh < s.HO; oh++)
      for (int ow = 0; ow < s.WO; ow++) {
        float* row = cols + (((long)b * s.HO + oh) * s.WO + ow) * K;
        const int iw0 = ow * s.SW - s.PL;
        const bool inside = iw0 >= 0 && iw0 + s.KW <= s.W;
        for (int kh = 0; kh < s.KH; kh++) {
          const int ih = oh * s.SH - s.PT + kh;
          float* dst = row + (long)kh * run;
          if (ih < 0 || ih >= s.H) {
            for (int i = 0; i < run; i++) dst[i] = 0.f;
            continue;
          }
          const float* line = x + ((long)b * s.H + ih) * s.W * s.C;
          if (inside) {
            const float* src = line + (long)iw0 * s.C;
            for (int i = 0; i < run; i++) dst[i] = src[i];
            continue;
          }
          for (int kw = 0; kw < s.KW; kw++) {
            const int iw = iw0 + kw;
            float* d = dst + (long)kw * s.C;
            if (iw < 0 || iw >= s.W) {
              for (int c = 0; c < s.C; c++) d[c] = 0.f;
            } else {
              const float* src = line + (long)iw * s.C;
              for (int c = 0; c < s.C; c++) d[c] = src[c];
            }
          }
        }
      }
}

void col2im(const ConvShape& s, const float* cols, float* dx) {
  const long K = patch(s);
  const int run = s.KW * s.C;
  std::memset(dx, 0, sizeof(float) * (size_t)s.B * s.H * s.W * s.C);
  for (int b = 0; b < s.B; b++)
    for (int oh = 0; oh < s.HO; oh++)
      for (int ow = 0; ow < s.WO; ow++) {
        const float* row = cols + (((long)b * s.HO + oh) * s.WO + ow) * K;
        const int iw0 = ow * s.SW - s.PL;
        const bool inside = iw0 >= 0 && iw0 + s.KW <= s.W;
        for (int kh = 0; kh < s.KH; kh++) {
          const int ih = oh * s.SH - s.PT + kh;
          if (ih < 0 || ih >= s.H) continue;
          const float* src = row + (long)kh * run;
          float* line = dx + ((long)b * s.H + ih) * s.W * s.C;
          if (inside) {
            float* __restrict d = line + (long)iw0 * s.C;
            for (int i = 0; i < run; i++) d[i] += src[i];
            continue;
          }
          for (int kw = 0; kw < s.KW; kw++) {
            const int iw = iw0 + kw;
            if (iw < 0 || iw >= s.W) continue;
            float* __restrict d = line + (long)iw * s.C;
            const float* sc = src + (long)kw * s.C;
            for (int c = 0; c < s.C; c++) d[c] += sc[c];
          }
        }
      }
}

}  // namespace

void conv2d(const ConvShape& s, const float* x, const float* w, float* y, int threads) {
  const long M = positions(s), K = patch(s);
  std::vector<float>& cols = scratch((size_t)(M * K));
  im2col(s, x, cols.data());
  sgemm({(int)M, s.CO, (int)K, cols.data(), w, y, false, false, threads});
}

void conv2d_filter_grad(const ConvShape& s, const float* x, const float* dy, float* dw, int threads) {
  const long M = positions(s), K = patch(s);
  std::vector<float>& cols = scratch((size_t)(M * K));
  im2col(s, x, cols.data());
  // (K, CO) = colsᵀ (K, M) · dy (M, CO)
  sgemm({(int)K, s.CO, (int)M, cols.data(), dy, dw, true, false, threads});
}

void conv2d_input_grad(const ConvShape& s, const float* dy, const float* w, float* dx, int threads) {
  const long M = positions(s), K = patch(s);
  std::vector<float>& cols = scratch((size_t)(M * K));
  // (M, K) = dy (M, CO) · Wᵀ (CO, K)
  sgemm({(int)M, (int)K, s.CO, dy, w, cols.data(), false, true, threads});
  col2im(s, cols.data(), dx);
}

void max_pool_grad(const ConvShape& s, const float* x, const float* dy, float* dx) {
  std::memset(dx, 0, sizeof(float) * (size_t)s.B * s.H * s.W * s.C);
  std::vector<float> best(s.C);
  std::vector<int> at(s.C);
  std::vector<long> offset((size_t)s.KH * s.KW);  // window position -> element offset of its pixel
  float* __restrict bp = best.data();
  int* __restrict ap = at.data();
  for (int b = 0; b < s.B; b++)
    for (int oh = 0; oh < s.HO; oh++) {
      const int r0 = oh * s.SH - s.PT;
      const int rMin = std::max(0, r0), rMax = std::min(s.H, r0 + s.KH);
      for (int ow = 0; ow < s.WO; ow++) {
        const int c0 = ow * s.SW - s.PL;
        const int cMin = std::max(0, c0), cMax = std::min(s.W, c0 + s.KW);
        if (rMin >= rMax || cMin >= cMax) continue;
        // Window scan in input order, channels innermost and branch-free (the comparisons of real
        // activations are unpredictable); strict > keeps the first maximum.
        const long first = (((long)b * s.H + rMin) * s.W + cMin) * s.C;
        for (int c = 0; c < s.C; c++) {
          bp[c] = x[first + c];
          ap[c] = 0;
        }
        for (int r = rMin; r < rMax; r++)
          for (int col = cMin; col < cMax; col++) {
            const long p = (((long)b * s.H + r) * s.W + col) * s.C;
            const int pos = (r - rMin) * (cMax - cMin) + (col - cMin);
            const float* __restrict xp = x + p;
            for (int c = 0; c < s.C; c++) {
              // Masks, not ?: on the index, which GCC turns into a branch per element.
              const int m = -static_cast<int>(xp[c] > bp[c]);
              ap[c] = (ap[c] & ~m) | (pos & m);
              bp[c] = xp[c] > bp[c] ? xp[c] : bp[c];
            }
          }
        const long d = (((long)b * s.HO + oh) * s.WO + ow) * s.C;
        int n = 0;
        for (int r = rMin; r < rMax; r++)
          for (int col = cMin; col < cMax; col++) offset[n++] = (((long)b * s.H + r) * s.W + col) * s.C;
        for (int c = 0; c < s.C; c++) dx[offset[ap[c]] + c] += dy[d + c];
      }
    }
}

void sum_rows(const float* x, float* out, long rows, int cols) {
  for (int c = 0; c < cols; c++) out[c] = 0.f;
  for (long r = 0; r < rows; r++) {
    const float* __restrict xr = x + r * cols;
    float* __restrict o = out;
    for (int c = 0; c < cols; c++) o[c] += xr[c];
  }
}

}  // namespace dn
