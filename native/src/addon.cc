// N-API bindings of Distillery's native kernels. Every array argument is a Float32Array whose memory
// is read or written in place (views of the tfjs wasm heap or of the cpu backend's arrays): nothing is
// copied, and nothing here keeps a pointer past the call.
#include <node_api.h>

#include <cstdint>

#include "conv.h"
#include "sgemm.h"

namespace {

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) return throw_(env, #call); \
  } while (0)

napi_value throw_(napi_env env, const char* what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "DISTILLERY_NATIVE", what);
  return nullptr;
}

// A Float32Array argument (null/undefined -> nullptr when optional); false after throwing.
bool floats(napi_env env, napi_value v, float** out, size_t* length, bool optional) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (optional && (type == napi_null || type == napi_undefined)) {
    *out = nullptr;
    *length = 0;
    return true;
  }
  bool is = false;
  napi_is_typedarray(env, v, &is);
  napi_typedarray_type ta;
  void* data = nullptr;
  napi_value buffer;
  size_t offset = 0;
  if (!is || napi_get_typedarray_info(env, v, &ta, length, &data, &buffer, &offset) != napi_ok ||
      ta != napi_float32_array) {
    napi_throw_type_error(env, "DISTILLERY_NATIVE", "expected a Float32Array");
    return false;
  }
  *out = static_cast<float*>(data);
  return true;
}

bool int_arg(napi_env env, napi_value v, int64_t* out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "DISTILLERY_NATIVE", "expected an integer");
    return false;
  }
  return true;
}

bool num_arg(napi_env env, napi_value v, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "DISTILLERY_NATIVE", "expected a number");
    return false;
  }
  return true;
}

bool bool_arg(napi_env env, napi_value v, bool* out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "DISTILLERY_NATIVE", "expected a boolean");
    return false;
  }
  return true;
}

// matmul(a, b, c, batch, M, N, K, transA, transB, aBatchStride, bBatchStride, bias|null, act, alpha, threads)
// c[i] = act(op(a[i]) op(b[i]) + bias) for i < batch; a stride of 0 broadcasts that operand.
napi_value Matmul(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value argv[15];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 15) return throw_(env, "matmul takes 15 arguments");
  float *a, *b, *c, *bias;
  size_t na, nb, nc, nbias;
  int64_t batch, M, N, K, sa, sb, act, threads;
  bool ta, tb;
  double alpha;
  if (!floats(env, argv[0], &a, &na, false) || !floats(env, argv[1], &b, &nb, false) ||
      !floats(env, argv[2], &c, &nc, false) || !int_arg(env, argv[3], &batch) || !int_arg(env, argv[4], &M) ||
      !int_arg(env, argv[5], &N) || !int_arg(env, argv[6], &K) || !bool_arg(env, argv[7], &ta) ||
      !bool_arg(env, argv[8], &tb) || !int_arg(env, argv[9], &sa) || !int_arg(env, argv[10], &sb) ||
      !floats(env, argv[11], &bias, &nbias, true) || !int_arg(env, argv[12], &act) || !num_arg(env, argv[13], &alpha) || !int_arg(env, argv[14], &threads))
    return nullptr;
  if (batch < 0 || M < 0 || N < 0 || K < 0 || sa < 0 || sb < 0) return throw_(env, "negative size");
  // Bounds: the last batch's operands must lie inside the arrays.
  const int64_t last = batch > 0 ? batch - 1 : 0;
  if ((int64_t)na < last * sa + M * K || (int64_t)nb < last * sb + K * N || (int64_t)nc < batch * M * N ||
      (bias != nullptr && (int64_t)nbias < N))
    return throw_(env, "matmul: an array is shorter than its shape says");
  for (int64_t i = 0; i < batch; i++) {
    float* ci = c + i * M * N;
    dn::sgemm({(int)M, (int)N, (int)K, a + i * sa, b + i * sb, ci, ta, tb, (int)threads});
    if (bias != nullptr || act != 0) dn::bias_act(ci, bias, (int)M, (int)N, (int)act, (float)alpha);
  }
  return nullptr;
}

// adam(p, g, m, v, out, lr, beta1, beta2, eps, c1, c2): see dn::adam; m and v are updated in place.
napi_value Adam(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 11) return throw_(env, "adam takes 11 arguments");
  float *p, *g, *m, *v, *out;
  size_t np, ng, nm, nv, nout;
  double h[6];
  if (!floats(env, argv[0], &p, &np, false) || !floats(env, argv[1], &g, &ng, false) ||
      !floats(env, argv[2], &m, &nm, false) || !floats(env, argv[3], &v, &nv, false) ||
      !floats(env, argv[4], &out, &nout, false))
    return nullptr;
  for (int i = 0; i < 6; i++)
    if (!num_arg(env, argv[5 + i], &h[i])) return nullptr;
  if (ng != np || nm != np || nv != np || nout != np) return throw_(env, "adam: arrays differ in length");
  dn::adam((long)np, p, g, m, v, out, (float)h[0], (float)h[1], (float)h[2], (float)h[3], (float)h[4], (float)h[5]);
  return nullptr;
}

// conv(op, a, b, out, B, H, W, C, KH, KW, CO, HO, WO, SH, SW, PT, PL, threads). op 0: conv2d (x, w -> y),
// 1: filter gradient (x, dy -> dw), 2: input gradient (dy, w -> dx), 3: max-pool gradient (x, dy -> dx;
// KH, KW the window, CO = C).
napi_value Conv(napi_env env, napi_callback_info info) {
  size_t argc = 18;
  napi_value argv[18];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 18) return throw_(env, "conv takes 18 arguments");
  int64_t op, v[14];
  if (!int_arg(env, argv[0], &op)) return nullptr;
  float *a, *b, *out;
  size_t na, nb, nout;
  if (!floats(env, argv[1], &a, &na, false) || !floats(env, argv[2], &b, &nb, false) ||
      !floats(env, argv[3], &out, &nout, false))
    return nullptr;
  for (int i = 0; i < 14; i++)
    if (!int_arg(env, argv[4 + i], &v[i])) return nullptr;
  for (int i = 0; i < 14; i++)
    if (v[i] < 0 || (i < 13 && i != 11 && i != 12 && v[i] == 0)) return throw_(env, "conv: bad shape");
  const dn::ConvShape s{(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5], (int)v[6],
                        (int)v[7], (int)v[8], (int)v[9], (int)v[10], (int)v[11], (int)v[12]};
  const int64_t xs = (int64_t)s.B * s.H * s.W * s.C, ws = (int64_t)s.KH * s.KW * s.C * s.CO,
                ys = (int64_t)s.B * s.HO * s.WO * s.CO;
  const int threads = (int)v[13];
  switch (op) {
    case 0:
      if ((int64_t)na < xs || (int64_t)nb < ws || (int64_t)nout < ys) return throw_(env, "conv: short array");
      dn::conv2d(s, a, b, out, threads);
      break;
    case 1:
      if ((int64_t)na < xs || (int64_t)nb < ys || (int64_t)nout < ws) return throw_(env, "conv: short array");
      dn::conv2d_filter_grad(s, a, b, out, threads);
      break;
    case 2:
      if ((int64_t)na < ys || (int64_t)nb < ws || (int64_t)nout < xs) return throw_(env, "conv: short array");
      dn::conv2d_input_grad(s, a, b, out, threads);
      break;
    case 3:
      if (s.CO != s.C || (int64_t)na < xs || (int64_t)nb < ys || (int64_t)nout < xs) return throw_(env, "conv: short array");
      dn::max_pool_grad(s, a, b, out);
      break;
    default:
      return throw_(env, "conv: unknown op");
  }
  return nullptr;
}

// sumRows(x, out, rows, cols): out[c] = Σ_r x[r * cols + c].
napi_value SumRows(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 4) return throw_(env, "sumRows takes 4 arguments");
  float *x, *out;
  size_t nx, nout;
  int64_t rows, cols;
  if (!floats(env, argv[0], &x, &nx, false) || !floats(env, argv[1], &out, &nout, false) ||
      !int_arg(env, argv[2], &rows) || !int_arg(env, argv[3], &cols))
    return nullptr;
  if (rows < 0 || cols < 0 || (int64_t)nx < rows * cols || (int64_t)nout < cols) return throw_(env, "sumRows: bad shape");
  dn::sum_rows(x, out, (long)rows, (int)cols);
  return nullptr;
}

// exp(x, out): out[i] = exp(x[i]) for i < x.length.
napi_value Exp(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 2) return throw_(env, "exp takes 2 arguments");
  float *x, *out;
  size_t nx, nout;
  if (!floats(env, argv[0], &x, &nx, false) || !floats(env, argv[1], &out, &nout, false)) return nullptr;
  if (nout < nx) return throw_(env, "exp: short output");
  dn::exp((long)nx, x, out);
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, isa, threads;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_string_utf8(env, dn::isa(), NAPI_AUTO_LENGTH, &isa));
  CHECK(napi_create_int32(env, dn::default_threads(), &threads));
  CHECK(napi_set_named_property(env, obj, "isa", isa));
  CHECK(napi_set_named_property(env, obj, "threads", threads));
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"matmul", nullptr, Matmul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv", nullptr, Conv, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumRows", nullptr, SumRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"exp", nullptr, Exp, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
