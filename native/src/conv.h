// NHWC convolutions (dilation 1) as im2col + the native SGEMM, and the max-pool gradient.
#pragma once

namespace dn {

// x (B, H, W, C), filter (KH, KW, C, CO), y (B, HO, WO, CO); strides SH, SW; PT, PL rows/columns of
// zero padding before the image (the rest of the padding is implied by HO, WO).
struct ConvShape {
  int B, H, W, C, KH, KW, CO, HO, WO, SH, SW, PT, PL;
};

void conv2d(const ConvShape& s, const float* x, const float* w, float* y, int threads);
// dw (KH, KW, C, CO) = Σ x-patches ⊗ dy.
void conv2d_filter_grad(const ConvShape& s, const float* x, const float* dy, float* dw, int threads);
// dx (B, H, W, C) = col2im(dy Wᵀ).
void conv2d_input_grad(const ConvShape& s, const float* dy, const float* w, float* dx, int threads);
// dx (B, H, W, C): each dy routed to the first maximum of its window (as tfjs's cpu backend).
void max_pool_grad(const ConvShape& s, const float* x, const float* dy, float* dx);
// out (cols) = Σ_r x[r, :]: a bias gradient, the sum over every axis but the last.
void sum_rows(const float* x, float* out, long rows, int cols);

}  // namespace dn
