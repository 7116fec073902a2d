// The backend parity harness (as ggml's test-backend-ops): every op of ops.hpp × several shapes ×
// every dtype a backend claims for it (Backend::supports), on every backend that has a device here
// — the CPU and each backend plugin on the search path whose device_count() > 0 — against the plain
// double-precision references of backend_ops_reference.hpp.
//
// Each run starts from outputs poisoned with NaN (or a sentinel for integer dtypes), so an element a
// backend forgets to write fails; accumulating (+=) outputs start from known non-zero values. Each
// case runs twice on fresh tensors and must give bitwise-identical results; backends that run the
// CPU's kernels (sim) must equal the CPU bit for bit, and ops with no arithmetic to reorder (copies,
// casts, gathers, dropout's hash) must match the CPU bit for bit on every backend.
//
// The table: an OpCase is (op, shape, builder, reference, tolerance). The builder makes its inputs
// on a device from host values fixed when the table is made, runs the op and returns its outputs by
// name; the reference computes the same names from the same host values in double. Adding an op or a
// shape is adding a row; a new backend plugin joins by being on the plugin path.
//
// Dtypes (ops.hpp): a float row builds its inputs and outputs in the case's compute dtype (f32, bf16
// or f16), with the inputs rounded to that dtype on the host first (`in_dtype`), so the double
// reference computes from exactly the values the device holds; the tensors ops.hpp keeps in f32
// (LayerNorm's mean/rstd, attention's lse) stay f32, and accumulated gradients (dw, db, dtable) and
// matmul's out are f32 in one row and in the compute dtype in another. Outputs in bf16/f16 are
// compared by their relative L2 error (`rel_l2_tolerance`), not element by element: one rounding to
// 8 or 11 significant bits already costs up to 2⁻⁸ or 2⁻¹¹ of every element. f32 outputs keep the
// row's element-wise tolerance in every dtype (their inputs are exact, only f32 arithmetic remains),
// and exact rows (copies, casts, gathers) stay exact.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "backend_ops_reference.hpp"
#include "tessera/backend.hpp"
#include "tessera/half.hpp"
#include "tessera/ops.hpp"
#include "tessera/rope_frequency.hpp"
#include "tessera/plugin.hpp"

using namespace tessera;
namespace ref = tessera::test::ref;

namespace {

using I64 = std::int64_t;
using Vec = std::vector<double>;
using Outputs = std::map<std::string, Tensor>;  // device tensors, by name
using Expected = std::map<std::string, Vec>;    // reference values, by the same names

const std::vector<DType> kAllDTypes = {DType::f32, DType::bf16, DType::f16, DType::i32,
                                       DType::i64, DType::u8,   DType::f64};
const std::vector<DType> kF32 = {DType::f32};
const std::vector<DType> kFloat = {DType::f32, DType::bf16, DType::f16};  // the compute dtypes
const std::vector<DType> k16 = {DType::bf16, DType::f16};  // rows that differ from f32 only in 16 bits
bool is16(DType t) { return t == DType::bf16 || t == DType::f16; }

// Backends whose ops are the CPU's kernels: they must equal the CPU bit for bit on every case.
const std::set<std::string> kRunsCpuKernels = {"cpu", "sim", "sim_staged"};

// ---- host values ↔ tensors -----------------------------------------------------------------------

// The value an output starts from when the op must overwrite it: NaN for floats, a sentinel for
// integers (the bit pattern as an integer for the 16-bit float types, which the test treats as bits).
double poison_value(DType t) {
  switch (t) {
    case DType::f32:
    case DType::f64: return std::nan("");
    case DType::bf16:
    case DType::f16: return 0x7fc1;
    case DType::u8: return 0xab;
    default: return -7777;
  }
}

// A tensor of `dtype` on `device` holding `values`. For bf16/f16 the values are numbers, converted
// to their bits with half.hpp; they must be representable (rounded with `in_dtype` first), else the
// reference would not see what the device sees. With `as_bits`, bf16/f16 values are bit patterns.
Tensor put(const Shape& shape, const Vec& values, Device device, DType dtype = DType::f32, bool as_bits = false) {
  Tensor h = Tensor::empty(shape, dtype);
  REQUIRE(static_cast<I64>(values.size()) == h.numel());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    switch (dtype) {
      case DType::f32: h.data<float>()[i] = static_cast<float>(v); break;
      case DType::f64: h.data<double>()[i] = v; break;
      case DType::i32: h.data<std::int32_t>()[i] = static_cast<std::int32_t>(v); break;
      case DType::i64: h.data<std::int64_t>()[i] = static_cast<std::int64_t>(v); break;
      case DType::u8: h.data<std::uint8_t>()[i] = static_cast<std::uint8_t>(v); break;
      case DType::bf16:
      case DType::f16: {
        std::uint16_t b;
        if (as_bits) {
          b = static_cast<std::uint16_t>(v);
        } else {
          const float f = static_cast<float>(v);
          b = dtype == DType::bf16 ? float_to_bf16(f) : float_to_f16(f);
          const double back = dtype == DType::bf16 ? bf16_to_float(b) : f16_to_float(b);
          if (back != v && !(std::isnan(back) && std::isnan(v)))
            throw std::logic_error(fmt::format("test bug: {} is not a {} value (round it with in_dtype)", v,
                                               dtype_name(dtype)));
        }
        static_cast<std::uint16_t*>(h.raw())[i] = b;
        break;
      }
    }
  }
  return h.to(device);
}
// 16-bit float types as bit patterns (copies move bits).
Tensor put_bits(const Shape& shape, const Vec& bits, Device device, DType dtype) {
  return put(shape, bits, device, dtype, /*as_bits=*/true);
}
Tensor put_ids(const std::vector<int>& ids, Device device) {
  return put({static_cast<I64>(ids.size())}, Vec(ids.begin(), ids.end()), device, DType::i32);
}
Tensor poisoned(const Shape& shape, Device device, DType dtype = DType::f32) {
  return put_bits(shape, Vec(static_cast<std::size_t>(shape_numel(shape)), poison_value(dtype)), device, dtype);
}

// An output read back: its dtype, its bytes (for bitwise checks) and its values as doubles (bf16/f16:
// the numbers they stand for, or with `as_bits` their bit patterns).
struct HostOut {
  DType dtype = DType::f32;
  std::vector<unsigned char> bytes;
  Vec values;
};
HostOut read(const Tensor& t, bool as_bits) {
  HostOut o;
  o.dtype = t.dtype();
  o.bytes.resize(t.nbytes());
  t.copy_to_host(o.bytes.data());
  o.values.resize(static_cast<std::size_t>(t.numel()));
  auto get = [&](auto zero, std::size_t i) {
    decltype(zero) v;
    std::memcpy(&v, o.bytes.data() + i * sizeof(v), sizeof(v));
    return v;
  };
  for (std::size_t i = 0; i < o.values.size(); ++i) {
    switch (t.dtype()) {
      case DType::f32: o.values[i] = get(float{}, i); break;
      case DType::f64: o.values[i] = get(double{}, i); break;
      case DType::i32: o.values[i] = get(std::int32_t{}, i); break;
      case DType::i64: o.values[i] = static_cast<double>(get(std::int64_t{}, i)); break;
      case DType::u8: o.values[i] = get(std::uint8_t{}, i); break;
      case DType::bf16: o.values[i] = as_bits ? get(std::uint16_t{}, i) : bf16_to_float(get(std::uint16_t{}, i)); break;
      case DType::f16: o.values[i] = as_bits ? get(std::uint16_t{}, i) : f16_to_float(get(std::uint16_t{}, i)); break;
    }
  }
  return o;
}
using HostOuts = std::map<std::string, HostOut>;

// Deterministic inputs, rounded to f32 so the reference sees exactly what the device sees.
struct Rng {
  std::mt19937_64 gen;
  explicit Rng(std::uint64_t seed) : gen(seed) {}
  Vec uniform(I64 n, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> d(lo, hi);
    Vec v(static_cast<std::size_t>(n));
    for (double& x : v) x = static_cast<float>(d(gen));
    return v;
  }
  std::vector<int> ints(I64 n, int lo, int hi) {  // in [lo, hi]
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int& x : v) x = d(gen);
    return v;
  }
};

Vec as_f32(Vec v) {
  for (double& x : v) x = static_cast<float>(x);
  return v;
}
// Values rounded to the precision of `t` (from f32, round to nearest even): what the device holds
// after `put`, and what an f32 result becomes when stored in `t`. f32: as_f32.
Vec in_dtype(Vec v, DType t) {
  for (double& x : v) x = round_to(t, static_cast<float>(x));
  return v;
}
Vec slice(const Vec& v, I64 begin, I64 end) { return Vec(v.begin() + begin, v.begin() + end); }

// ---- the table -----------------------------------------------------------------------------------

// |got − want| ≤ abs + rel·|want| for every element (NaN only matches NaN, ±∞ only itself).
struct Tol {
  double abs = 0, rel = 0;
};
// Exact: copies, gathers, integer ops, and values a single f32 rounding of the double result
// reaches exactly (the reference is rounded to f32 too, with `as_f32`).
constexpr Tol kExact{0, 0};
// One or two f32 roundings of O(1) values (add, axpy, scale, add_bias, dropout's scale).
constexpr Tol kElementwise{1e-6, 1e-6};
// Sums of `terms` f32 products of O(1) values: each f32 addition rounds by ≤ 2⁻²⁴·|partial sum|,
// so the error is ~√terms·6e-8·|value| typically and below terms²·6e-8 in the worst case; we allow
// terms·1e-6 absolute (≥ 10× the typical error for the sizes here) plus 1e-5 relative. A wrong
// element (a missed term, a wrong index) is off by O(0.1–1).
Tol accumulation(I64 terms) { return {static_cast<double>(terms) * 1e-6, 1e-5}; }

// Outputs in bf16/f16 (unless the row is exact): ‖got − want‖₂ / ‖want‖₂ over the whole output.
// Storing a result in bf16 rounds it to 8 significant bits, a relative error up to u = 2⁻⁸ ≈ 3.9e-3
// per element (RMS ≈ 0.4 u ≈ 1.6e-3 over many elements; a 6-element output here reaches 2.8e-3):
// 1e-2 is 2.6 u, room for that rounding plus one rounded intermediate (a backend that keeps
// attention's probabilities in bf16, say), while a wrong formula, a missed term or a wrong index
// costs O(1). f16 keeps 11 bits (u = 2⁻¹¹ ≈ 4.9e-4, 8× finer; the largest error here ≈ 3.4e-4): 2e-3
// is 4 u, the same room. The CPU rounds once and uses at most a third of either. An L2 norm over
// many elements can hide one wrong element, so each element must also be within 5× that bound of the
// output's largest magnitude (|got − want| ≤ 5·tol·‖want‖∞: 6–13 bf16 ulps there). NaN anywhere fails.
double rel_l2_tolerance(DType t) { return t == DType::bf16 ? 1e-2 : 2e-3; }
constexpr double kRelL2ElementFactor = 5;

struct OpCase {
  OpCase(std::string op_name, std::string shape_desc) : op(std::move(op_name)), shape(std::move(shape_desc)) {}
  std::string op;     // the op of ops.hpp this row runs: the name Backend::supports is asked about
  std::string shape;  // what varies between the rows of one op
  std::vector<std::string> needs = {};  // where the row runs several ops: all of them (else `op`)
  std::vector<DType> dtypes = kF32;  // the dtypes this builder can make
  std::vector<DType> also_claims = {};  // other dtypes the backend must claim the op(s) in (a cast's source)
  std::function<Outputs(Device, DType)> run;
  std::function<Expected(DType)> reference;  // null: only the property is checked
  Tol tol;
  std::map<std::string, Tol> tol_for = {};  // per output, where it differs from `tol`
  bool exact_everywhere = false;             // no arithmetic to reorder: every backend equals the CPU
  bool bits = false;  // bf16/f16 outputs read and compared as bit patterns (copies move bits)
  std::function<std::string(const HostOuts&, DType)> property = nullptr;  // extra check; "" when it holds
  std::string disabled = "";  // a known bug: why this row does not run yet
};

// Large enough that the CPU kernels take their OpenMP paths (their thresholds are 2¹⁴–2¹⁶ elements):
// determinism and the other backends' parity must hold there too.
const Shape kThreaded = {300, 129};

// ---- matmul, linear ------------------------------------------------------------------------------

void matmul_cases(std::vector<OpCase>& cases) {
  struct S {
    I64 M, K, N;
    float alpha, beta;
    bool flatten_a;  // a as [2, M/2, K]
  };
  const std::vector<S> shapes = {{7, 13, 5, 1, 0, false},   {1, 9, 3, 1, 0, false},      {17, 33, 11, 1, 0, false},
                                 {7, 13, 5, 0.5f, 0, false}, {7, 13, 5, -1.5f, 0.75f, false}, {6, 5, 3, 1, 1, true},
                                 {130, 65, 129, 1, 0, false}};
  Rng rng(11);
  for (const S& s : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        if (s.flatten_a && ta) continue;  // flattening applies to a as stored [.., M, K]
        const Vec a = rng.uniform(s.M * s.K), b = rng.uniform(s.K * s.N), out0 = rng.uniform(s.M * s.N);
        const Shape a_shape = s.flatten_a ? Shape{2, s.M / 2, s.K} : (ta ? Shape{s.K, s.M} : Shape{s.M, s.K});
        const Shape b_shape = tb ? Shape{s.N, s.K} : Shape{s.K, s.N};
        const std::string shape = fmt::format("M={} K={} N={} ta={} tb={} alpha={} beta={}{}", s.M, s.K, s.N, ta, tb,
                                              s.alpha, s.beta, s.flatten_a ? " a=[2,M/2,K]" : "");
        // out in the compute dtype (every dtype), and out f32 for bf16/f16 inputs (logits, weight
        // gradients: f32 accumulation, no rounding).
        for (bool out_f32 : {false, true}) {
          OpCase c{"matmul", shape + (out_f32 ? " out f32" : "")};
          c.dtypes = out_f32 ? k16 : kFloat;
          c.run = [=](Device d, DType t) {
            const DType ot = out_f32 ? DType::f32 : t;
            // beta = 0 must not read out (BLAS): it starts as NaN. Otherwise it starts from out0.
            Tensor out = s.beta == 0 ? poisoned({s.M, s.N}, d, ot) : put({s.M, s.N}, in_dtype(out0, ot), d, ot);
            ops::matmul(put(a_shape, in_dtype(a, t), d, t), ta, put(b_shape, in_dtype(b, t), d, t), tb, out, s.alpha,
                        s.beta);
            return Outputs{{"out", out}};
          };
          c.reference = [=](DType t) {
            const DType ot = out_f32 ? DType::f32 : t;
            return Expected{{"out", ref::matmul(in_dtype(a, t), ta, in_dtype(b, t), tb, s.M, s.N, s.K, s.alpha, s.beta,
                                                in_dtype(out0, ot))}};
          };
          c.tol = accumulation(s.K + 1);
          cases.push_back(c);
        }
      }
}

void linear_cases(std::vector<OpCase>& cases) {
  struct S {
    I64 N, in, out;
  };
  Rng rng(12);
  for (const S s : {S{7, 13, 5}, S{1, 9, 3}, S{10, 17, 6}, S{520, 33, 129}}) {  // the last: threaded
    const Vec x = rng.uniform(s.N * s.in), w = rng.uniform(s.out * s.in), bias = rng.uniform(s.out);
    const Vec dy = rng.uniform(s.N * s.out), dw0 = rng.uniform(s.out * s.in), db0 = rng.uniform(s.out);
    for (bool with_bias : {true, false}) {
      OpCase c{"linear_forward", fmt::format("N={} in={} out={} bias={}", s.N, s.in, s.out, with_bias)};
      c.dtypes = kFloat;
      c.run = [=](Device d, DType t) {
        Tensor y = poisoned({s.N, s.out}, d, t), b = put({s.out}, in_dtype(bias, t), d, t);
        ops::linear_forward(put({s.N, s.in}, in_dtype(x, t), d, t), put({s.out, s.in}, in_dtype(w, t), d, t),
                            with_bias ? &b : nullptr, y);
        return Outputs{{"y", y}};
      };
      c.reference = [=](DType t) {
        const Vec bt = in_dtype(bias, t);
        Vec y = ref::matmul(in_dtype(x, t), false, in_dtype(w, t), true, s.N, s.out, s.in, 1, 0, {});
        if (with_bias)
          for (I64 i = 0; i < s.N * s.out; ++i) y[i] += bt[i % s.out];
        return Expected{{"y", y}};
      };
      c.tol = accumulation(s.in + 1);
      cases.push_back(c);
    }
    // dx overwritten (poisoned), dw and db accumulated (start from dw0, db0); each may be absent. The
    // gradients are f32 (every dtype), and in the compute dtype (bf16/f16, one row per shape).
    for (auto [want_dx, want_db, grads_f32] :
         {std::tuple{true, true, true}, {false, true, true}, {true, false, true}, {true, true, false}}) {
      OpCase c{"linear_backward", fmt::format("N={} in={} out={} dx={} db={}{}", s.N, s.in, s.out, want_dx, want_db,
                                              grads_f32 ? "" : " dw,db in the compute dtype")};
      c.dtypes = grads_f32 ? kFloat : k16;
      c.run = [=](Device d, DType t) {
        const DType gt = grads_f32 ? DType::f32 : t;
        Tensor dx = poisoned({s.N, s.in}, d, t), dw = put({s.out, s.in}, in_dtype(dw0, gt), d, gt),
               db = put({s.out}, in_dtype(db0, gt), d, gt);
        ops::linear_backward(put({s.N, s.out}, in_dtype(dy, t), d, t), put({s.N, s.in}, in_dtype(x, t), d, t),
                             put({s.out, s.in}, in_dtype(w, t), d, t), want_dx ? &dx : nullptr, &dw,
                             want_db ? &db : nullptr);
        Outputs o{{"dw", dw}};
        if (want_dx) o["dx"] = dx;
        if (want_db) o["db"] = db;
        return o;
      };
      c.reference = [=](DType t) {
        const DType gt = grads_f32 ? DType::f32 : t;
        const Vec dyt = in_dtype(dy, t), xt = in_dtype(x, t);
        Vec dw = ref::matmul(dyt, true, xt, false, s.out, s.in, s.N, 1, 1, in_dtype(dw0, gt)), db = in_dtype(db0, gt);
        for (I64 i = 0; i < s.N * s.out; ++i) db[i % s.out] += dyt[i];
        Expected e{{"dw", dw}};
        if (want_dx) e["dx"] = ref::matmul(dyt, false, in_dtype(w, t), false, s.N, s.in, s.out, 1, 0, {});
        if (want_db) e["db"] = db;
        return e;
      };
      c.tol = accumulation(std::max(s.N, s.out) + 1);
      cases.push_back(c);
    }
  }
}

// ---- layer norm, gelu, tanh, dropout -------------------------------------------------------------

void layer_norm_cases(std::vector<OpCase>& cases) {
  Rng rng(13);
  const double eps = 1e-5;
  for (auto [N, C] : {std::pair<I64, I64>{5, 13}, {1, 7}, {3, 97}, {kThreaded[0], kThreaded[1]}}) {
    const Vec x = rng.uniform(N * C, -2, 3), w = rng.uniform(C, 0.5, 1.5), b = rng.uniform(C);
    const Vec dy = rng.uniform(N * C), dw0 = rng.uniform(C), db0 = rng.uniform(C);
    OpCase f{"layer_norm_forward", fmt::format("N={} C={}", N, C)};
    f.dtypes = kFloat;
    f.run = [=](Device d, DType t) {
      // mean and rstd are f32 whatever the compute dtype.
      Tensor y = poisoned({N, C}, d, t), mean = poisoned({N}, d), rstd = poisoned({N}, d);
      ops::layer_norm_forward(put({N, C}, in_dtype(x, t), d, t), put({C}, in_dtype(w, t), d, t),
                              put({C}, in_dtype(b, t), d, t), static_cast<float>(eps), y, mean, rstd);
      return Outputs{{"y", y}, {"mean", mean}, {"rstd", rstd}};
    };
    f.reference = [=](DType t) {
      ref::LayerNorm r = ref::layer_norm(in_dtype(x, t), in_dtype(w, t), in_dtype(b, t), eps, N, C);
      return Expected{{"y", r.y}, {"mean", r.mean}, {"rstd", r.rstd}};
    };
    // Mean and variance are sums of C terms; rstd ≈ 1 here.
    f.tol = accumulation(C);
    cases.push_back(f);

    // Backward takes the reference's saved statistics of the rounded x (as f32, their dtype in every
    // compute dtype), so it is tested on its own.
    std::map<DType, std::pair<Vec, Vec>> saved;  // dtype → (mean, rstd)
    for (DType t : kFloat) {
      const ref::LayerNorm r = ref::layer_norm(in_dtype(x, t), in_dtype(w, t), in_dtype(b, t), eps, N, C);
      saved[t] = {as_f32(r.mean), as_f32(r.rstd)};
    }
    // dw, db f32 (every dtype), and in the compute dtype (bf16/f16).
    for (bool grads_f32 : {true, false}) {
      OpCase g{"layer_norm_backward", fmt::format("N={} C={}{}", N, C, grads_f32 ? "" : " dw,db in the compute dtype")};
      g.dtypes = grads_f32 ? kFloat : k16;
      g.run = [=](Device d, DType t) {
        const DType gt = grads_f32 ? DType::f32 : t;
        const auto& [mean, rstd] = saved.at(t);
        Tensor dx = poisoned({N, C}, d, t), dw = put({C}, in_dtype(dw0, gt), d, gt), db = put({C}, in_dtype(db0, gt), d, gt);
        ops::layer_norm_backward(put({N, C}, in_dtype(dy, t), d, t), put({N, C}, in_dtype(x, t), d, t),
                                 put({C}, in_dtype(w, t), d, t), put({N}, mean, d), put({N}, rstd, d), dx, dw, db);
        return Outputs{{"dx", dx}, {"dw", dw}, {"db", db}};
      };
      g.reference = [=](DType t) {
        const DType gt = grads_f32 ? DType::f32 : t;
        const auto& [mean, rstd] = saved.at(t);
        Vec dx, dw = in_dtype(dw0, gt), db = in_dtype(db0, gt);
        ref::layer_norm_backward(in_dtype(dy, t), in_dtype(x, t), in_dtype(w, t), mean, rstd, N, C, dx, dw, db);
        return Expected{{"dx", dx}, {"dw", dw}, {"db", db}};
      };
      g.tol = accumulation(std::max(N, C));
      cases.push_back(g);
    }
  }
}

// The elementwise activations: GELU (tanh and erf forms) and squared ReLU, whose backward takes x,
// and tanh and the sigmoid, whose backward takes the forward's output y — there the backward's y is
// the function of random x rounded to the dtype (|x| up to 5: tanh within 1e-4 of ±1, where 1 − y²
// must not cancel). Each with its exact value and derivative as the reference.
struct Activation {
  const char* name;  // the ops' prefix: "<name>_forward", "<name>_backward"
  const char* label;
  std::function<void(const Tensor&, Tensor&)> forward;
  std::function<void(const Tensor&, const Tensor&, Tensor&)> backward;
  double (*value)(double);
  double (*grad)(double);  // of x, or (from_output) of y
  int stream;  // its inputs' random stream: GELU's two forms share one, as they always have
  bool from_output = false;
  // A vectorised f32 exp (≈ 1e-7 relative) and a handful of f32 operations per element; libm's
  // tanhf / expf and CUDA's (2 ulp), then the f32 store.
  Tol tol = {2e-6, 1e-5};
};

void activation_cases(std::vector<OpCase>& cases) {
  const std::vector<Activation> activations = {
      {"gelu", "tanh", [](const Tensor& x, Tensor& y) { ops::gelu_forward(x, y); },
       [](const Tensor& dy, const Tensor& x, Tensor& dx) { ops::gelu_backward(dy, x, dx); }, ref::gelu, ref::gelu_grad, 0},
      {"gelu", "erf", [](const Tensor& x, Tensor& y) { ops::gelu_forward(x, y, ops::GeluForm::erf); },
       [](const Tensor& dy, const Tensor& x, Tensor& dx) { ops::gelu_backward(dy, x, dx, ops::GeluForm::erf); },
       ref::gelu_erf, ref::gelu_erf_grad, 0},
      {"squared_relu", "", ops::squared_relu_forward, ops::squared_relu_backward,
       [](double v) { return v > 0 ? v * v : 0.0; }, [](double v) { return v > 0 ? 2 * v : 0.0; }, 1},
      {"tanh", "", ops::tanh_forward, ops::tanh_backward, [](double v) { return std::tanh(v); },
       ref::tanh_grad_from_y, 2, true, {1e-7, 1e-6}},
      {"sigmoid", "", ops::sigmoid_forward, ops::sigmoid_backward, [](double v) { return 1.0 / (1.0 + std::exp(-v)); },
       [](double y) { return y * (1.0 - y); }, 2, true, {1e-7, 1e-6}}};
  Rng streams[3] = {Rng(14), Rng(15), Rng(24)};
  for (const Shape& shape : {Shape{37}, Shape{1}, Shape{5, 19}, kThreaded}) {
    for (const Activation& a : activations) {
      const I64 n = shape_numel(shape);
      Rng& rng = streams[a.stream];
      const Vec x = rng.uniform(n, -5, 5), dy = rng.uniform(n);
      Vec grad_at = x;  // what backward reads: x, or the forward's output
      if (a.from_output)
        for (double& v : grad_at) v = a.value(v);
      const std::string label = shape_str(shape) + (*a.label ? std::string(" ") + a.label : std::string());
      OpCase f{std::string(a.name) + "_forward", label};
      f.dtypes = kFloat;
      f.run = [=](Device d, DType t) {
        Tensor y = poisoned(shape, d, t);
        a.forward(put(shape, in_dtype(x, t), d, t), y);
        return Outputs{{"y", y}};
      };
      f.reference = [=](DType t) {
        Vec y = in_dtype(x, t);
        for (double& v : y) v = a.value(v);
        return Expected{{"y", y}};
      };
      f.tol = a.tol;
      cases.push_back(f);
      OpCase g{std::string(a.name) + "_backward", label};
      g.dtypes = kFloat;
      g.run = [=](Device d, DType t) {
        Tensor dx = poisoned(shape, d, t);
        a.backward(put(shape, in_dtype(dy, t), d, t), put(shape, in_dtype(grad_at, t), d, t), dx);
        return Outputs{{"dx", dx}};
      };
      g.reference = [=](DType t) {
        const Vec at = in_dtype(grad_at, t), dyt = in_dtype(dy, t);
        Vec dx(at.size());
        for (std::size_t i = 0; i < at.size(); ++i) dx[i] = dyt[i] * a.grad(at[i]);
        return Expected{{"dx", dx}};
      };
      g.tol = a.tol;
      cases.push_back(g);
    }
  }
}

// ---- rms_norm, swiglu, rope (Llama-style blocks) -------------------------------------------------

void rms_norm_cases(std::vector<OpCase>& cases) {
  Rng rng(31);
  const double eps = 1e-5;
  for (auto [N, C] : {std::pair<I64, I64>{5, 13}, {1, 7}, {3, 97}, {kThreaded[0], kThreaded[1]}}) {
    const Vec x = rng.uniform(N * C, -2, 3), w = rng.uniform(C, 0.5, 1.5);
    const Vec dy = rng.uniform(N * C), dw0 = rng.uniform(C);
    // y = w·x·r, r = 1/√(mean(x²) + eps), and backward, in double on the rounded inputs.
    const auto rstd_of = [=](const Vec& xt) {
      Vec r(static_cast<std::size_t>(N));
      for (I64 i = 0; i < N; ++i) {
        double s = 0;
        for (I64 c = 0; c < C; ++c) s += xt[i * C + c] * xt[i * C + c];
        r[i] = 1.0 / std::sqrt(s / C + eps);
      }
      return r;
    };
    OpCase f{"rms_norm_forward", fmt::format("N={} C={}", N, C)};
    f.dtypes = kFloat;
    f.run = [=](Device d, DType t) {
      Tensor y = poisoned({N, C}, d, t), rstd = poisoned({N}, d);
      ops::rms_norm_forward(put({N, C}, in_dtype(x, t), d, t), put({C}, in_dtype(w, t), d, t), static_cast<float>(eps),
                            y, rstd);
      return Outputs{{"y", y}, {"rstd", rstd}};
    };
    f.reference = [=](DType t) {
      const Vec xt = in_dtype(x, t), wt = in_dtype(w, t), r = rstd_of(xt);
      Vec y(xt.size());
      for (I64 i = 0; i < N; ++i)
        for (I64 c = 0; c < C; ++c) y[i * C + c] = wt[c] * xt[i * C + c] * r[i];
      return Expected{{"y", y}, {"rstd", r}};
    };
    f.tol = accumulation(C);
    cases.push_back(f);
    OpCase g{"rms_norm_backward", fmt::format("N={} C={}", N, C)};
    g.dtypes = kFloat;
    g.run = [=](Device d, DType t) {
      const Vec r = as_f32(rstd_of(in_dtype(x, t)));  // the saved statistics, f32 in every dtype
      Tensor dx = poisoned({N, C}, d, t), dw = put({C}, dw0, d);
      ops::rms_norm_backward(put({N, C}, in_dtype(dy, t), d, t), put({N, C}, in_dtype(x, t), d, t),
                             put({C}, in_dtype(w, t), d, t), put({N}, r, d), dx, dw);
      return Outputs{{"dx", dx}, {"dw", dw}};
    };
    g.reference = [=](DType t) {
      const Vec xt = in_dtype(x, t), wt = in_dtype(w, t), dyt = in_dtype(dy, t), r = as_f32(rstd_of(xt));
      Vec dx(xt.size()), dw = as_f32(dw0);
      for (I64 i = 0; i < N; ++i) {
        double sgx = 0;
        for (I64 c = 0; c < C; ++c) {
          sgx += dyt[i * C + c] * wt[c] * xt[i * C + c] * r[i];
          dw[c] += dyt[i * C + c] * xt[i * C + c] * r[i];
        }
        for (I64 c = 0; c < C; ++c)
          dx[i * C + c] = r[i] * (dyt[i * C + c] * wt[c] - xt[i * C + c] * r[i] * sgx / C);
      }
      return Expected{{"dx", dx}, {"dw", dw}};
    };
    g.tol = accumulation(std::max(N, C));
    cases.push_back(g);
  }
}

void swiglu_cases(std::vector<OpCase>& cases) {
  Rng rng(32);
  // SwiGLU, and gpt-oss's unit: quick GELU's σ(1.702·a), both halves clamped at 7, linear offset 1.
  GatedLinearUnit oss;
  oss.alpha = kQuickGeluAlpha;
  oss.clamp = 7.0f;
  oss.linear_offset = 1.0f;
  for (const GatedLinearUnit& unit : {GatedLinearUnit{}, oss})
  for (auto [N, F] : {std::pair<I64, I64>{1, 1}, {5, 19}, {3, 64}, {kThreaded[0], kThreaded[1]}}) {
    const Vec x = rng.uniform(N * 2 * F, -9, 9), dy = rng.uniform(N * F);
    const double alpha = unit.alpha, c = unit.clamp, offset = unit.linear_offset;
    const auto sig = [](double a) { return 1.0 / (1.0 + std::exp(-a)); };
    const std::string label = fmt::format("N={} F={} alpha={} clamp={} offset={}", N, F, alpha, c, offset);
    OpCase f{"swiglu_forward", label};
    f.dtypes = kFloat;
    f.run = [=](Device d, DType t) {
      Tensor y = poisoned({N, F}, d, t);
      ops::swiglu_forward(put({N, 2 * F}, in_dtype(x, t), d, t), y, unit);
      return Outputs{{"y", y}};
    };
    f.reference = [=](DType t) {
      const Vec xt = in_dtype(x, t);
      Vec y(static_cast<std::size_t>(N * F));
      for (I64 i = 0; i < N; ++i)
        for (I64 k = 0; k < F; ++k) {
          const double a = std::min(xt[i * 2 * F + k], c), b = std::clamp(xt[i * 2 * F + F + k], -c, c);
          y[i * F + k] = a * sig(alpha * a) * (b + offset);
        }
      return Expected{{"y", y}};
    };
    f.tol = {2e-6, 1e-5};
    cases.push_back(f);
    OpCase g{"swiglu_backward", label};
    g.dtypes = kFloat;
    g.run = [=](Device d, DType t) {
      Tensor dx = poisoned({N, 2 * F}, d, t);
      ops::swiglu_backward(put({N, F}, in_dtype(dy, t), d, t), put({N, 2 * F}, in_dtype(x, t), d, t), dx, unit);
      return Outputs{{"dx", dx}};
    };
    g.reference = [=](DType t) {
      const Vec xt = in_dtype(x, t), dyt = in_dtype(dy, t);
      Vec dx(xt.size());
      for (I64 i = 0; i < N; ++i)
        for (I64 k = 0; k < F; ++k) {
          const double x0 = xt[i * 2 * F + k], x1 = xt[i * 2 * F + F + k], gr = dyt[i * F + k];
          const double a = std::min(x0, c), b = std::clamp(x1, -c, c), s = sig(alpha * a);
          dx[i * 2 * F + k] = x0 <= c ? gr * (b + offset) * s * (1 + alpha * a * (1 - s)) : 0.0;
          dx[i * 2 * F + F + k] = x1 >= -c && x1 <= c ? gr * a * s : 0.0;
        }
      return Expected{{"dx", dx}};
    };
    g.tol = {2e-6, 1e-5};
    cases.push_back(g);
  }
}

void rope_cases(std::vector<OpCase>& cases) {
  Rng rng(33);
  // (B, T, H, D, rotary dim, interleaved, row width, position offset, base, Llama 3.1 scaling factor,
  // position interpolation factor, YaRN)
  struct R {
    I64 B, T, H, D, dim;
    bool interleaved;
    I64 width, offset;
    double base = 10000.0, scaling = 0.0, interpolation = 1.0;
    RopeYarn yarn{};
  };
  RopeYarn gpt_oss_yarn;  // gpt-oss's: factor 32 of 4096 positions (its base 150000 below)
  gpt_oss_yarn.factor = 32.0;
  for (const R& r : {R{1, 1, 1, 2, 2, false, 2, 0}, R{2, 5, 3, 8, 4, true, 24, 0}, R{2, 7, 2, 16, 8, false, 64, 3},
                     R{3, 65, 4, 32, 32, true, 128, 0}, R{2, 300, 2, 64, 64, false, 256, 0},
                     R{2, 9, 2, 128, 128, false, 256, 9000, 500000.0, 8.0},
                     R{2, 9, 2, 32, 32, true, 64, 5, 10000.0, 0.0, 4.0},
                     R{2, 9, 2, 64, 64, false, 128, 3000, 150000.0, 0.0, 1.0, gpt_oss_yarn}}) {
    const I64 n = r.B * r.T * r.width;
    const Vec x = rng.uniform(n, -2, 2);
    const ops::RopeShape s{r.B, r.T, r.H, r.D, r.width, r.dim, r.base, r.interleaved,
                           r.offset, r.scaling, r.interpolation, r.yarn};
    const auto rotate = [=](Vec v, bool inverse) {
      const I64 half = r.dim / 2;
      for (I64 row = 0; row < r.B * r.T; ++row)
        for (I64 h = 0; h < r.H; ++h)
          for (I64 i = 0; i < half; ++i) {
            // The frequencies from the header the kernels share (checked against PyTorch in test_ops).
            const double angle = static_cast<double>(r.offset + row % r.T) / r.interpolation *
                                 rope_inv_freq(i, r.dim, r.base, r.scaling, r.yarn);
            const double m = rope_magnitude(r.yarn);
            const double c = m * std::cos(angle), sn = m * (inverse ? -std::sin(angle) : std::sin(angle));
            const I64 a = row * r.width + h * r.D + (r.interleaved ? 2 * i : i), b = a + (r.interleaved ? 1 : half);
            const double va = v[a], vb = v[b];
            v[a] = va * c - vb * sn;
            v[b] = vb * c + va * sn;
          }
      return v;
    };
    for (bool inverse : {false, true}) {
      OpCase f{inverse ? "rope_backward" : "rope_forward",
               fmt::format("B={} T={} H={} D={} dim={}{} W={} offset={} base={} scaling={} yarn={}", r.B, r.T, r.H, r.D,
                           r.dim, r.interleaved ? " interleaved" : "", r.width, r.offset, r.base, r.scaling,
                           r.yarn.factor)};
      f.dtypes = kFloat;
      f.run = [=](Device d, DType t) {
        Tensor y = put({r.B, r.T, r.width}, in_dtype(x, t), d, t);
        inverse ? ops::rope_backward(s, y) : ops::rope_forward(s, y);
        return Outputs{{"y", y}};
      };
      f.reference = [=](DType t) { return Expected{{"y", rotate(in_dtype(x, t), inverse)}}; };
      f.tol = {2e-6, 1e-5};
      cases.push_back(f);
    }
  }
}

// Relative error of one rounding to `t` (round to nearest even, normal values): 2⁻⁸ for bf16, 2⁻¹¹
// for f16, 0 for f32.
double rounding_error(DType t) { return t == DType::bf16 ? 0x1p-8 : t == DType::f16 ? 0x1p-11 : 0.0; }

// Dropout's mask is the backend's hash, so the reference is a property: every output is 0 or
// x/(1−p) (in bf16/f16: that product rounded once), backward drops exactly what forward dropped,
// about 1−p is kept, and a shard run with `offset` reproduces its slice of the whole. p = 0 must
// copy. The hash is part of the contract (checkpoints resume with the same masks), so every backend
// must equal the CPU bit for bit.
void dropout_cases(std::vector<OpCase>& cases) {
  Rng rng(15);
  struct S {
    I64 N, C;
    float p;
    std::uint64_t seed;
  };
  for (const S s : {S{7, 13, 0.3f, 1234}, S{1, 5, 0.5f, 99}, S{31, 17, 0.1f, 7}, S{7, 13, 0.0f, 5}, S{257, 129, 0.2f, 42}}) {
    // Values away from 0, so that a zero output can only be a dropped element.
    Vec x = rng.uniform(s.N * s.C, 0.1, 2.0), dy = rng.uniform(s.N * s.C, 0.1, 2.0);
    for (std::size_t i = 0; i < x.size(); i += 2) x[i] = -x[i];
    const I64 tail_row = s.N / 2, tail = (s.N - tail_row) * s.C;
    OpCase c{"dropout", fmt::format("[{},{}] p={} tail from row {}", s.N, s.C, s.p, tail_row)};
    c.needs = {"dropout_forward", "dropout_backward"};
    c.dtypes = kFloat;
    c.run = [=](Device d, DType t) {
      const Vec xt = in_dtype(x, t);
      Tensor y = poisoned({s.N, s.C}, d, t), dx = poisoned({s.N, s.C}, d, t), y_tail = poisoned({tail}, d, t);
      ops::dropout_forward(put({s.N, s.C}, xt, d, t), s.p, s.seed, y);
      ops::dropout_backward(put({s.N, s.C}, in_dtype(dy, t), d, t), s.p, s.seed, dx);
      ops::dropout_forward(put({tail}, slice(xt, tail_row * s.C, s.N * s.C), d, t), s.p, s.seed, y_tail,
                           tail_row * s.C);
      return Outputs{{"y", y}, {"dx", dx}, {"y_tail", y_tail}};
    };
    if (s.p == 0.0f)
      c.reference = [=](DType t) {
        const Vec xt = in_dtype(x, t);
        return Expected{{"y", xt}, {"dx", in_dtype(dy, t)}, {"y_tail", slice(xt, tail_row * s.C, s.N * s.C)}};
      };
    c.property = [=](const HostOuts& o, DType t) -> std::string {
      const Vec xs = in_dtype(x, t), dys = in_dtype(dy, t);
      const Vec &y = o.at("y").values, &dx = o.at("dx").values, &yt = o.at("y_tail").values;
      const double keep_scale = 1.0 / (1.0 - s.p), rel = 1e-6 + rounding_error(t);
      I64 kept = 0;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        const bool dropped = y[i] == 0.0;
        kept += dropped ? 0 : 1;
        if (!dropped && !(std::abs(y[i] - xs[i] * keep_scale) <= rel * std::abs(xs[i] * keep_scale)))
          return fmt::format("y[{}] = {} is neither 0 nor x/(1-p) = {}", i, y[i], xs[i] * keep_scale);
        if ((dx[i] == 0.0) != dropped)
          return fmt::format("element {}: forward {} it, backward {}", i, dropped ? "dropped" : "kept",
                             dx[i] == 0.0 ? "dropped" : "kept");
        if (!dropped && !(std::abs(dx[i] - dys[i] * keep_scale) <= rel * std::abs(dys[i] * keep_scale)))
          return fmt::format("dx[{}] = {} is not dy/(1-p) = {}", i, dx[i], dys[i] * keep_scale);
      }
      const double n = static_cast<double>(xs.size()), expect = n * (1.0 - s.p);
      if (std::abs(static_cast<double>(kept) - expect) > 4 * std::sqrt(n * s.p * (1 - s.p)) + 1)  // 4σ
        return fmt::format("kept {} of {} elements with p = {}", kept, xs.size(), s.p);
      const std::size_t first = static_cast<std::size_t>(tail_row * s.C), esize = dtype_size(t);
      if (std::memcmp(o.at("y_tail").bytes.data(), o.at("y").bytes.data() + first * esize, yt.size() * esize) != 0)
        return "a shard run with offset differs from its slice of the whole";
      return "";
    };
    c.tol = kExact;
    c.exact_everywhere = true;
    cases.push_back(c);
  }
}

// ---- embedding -----------------------------------------------------------------------------------

constexpr I64 kGpt2Vocab = 50257;

void embedding_cases(std::vector<OpCase>& cases) {
  Rng rng(16);
  struct S {
    I64 V, C, N;
  };
  for (const S s : {S{kGpt2Vocab, 5, 7}, S{kGpt2Vocab, 3, 1}, S{11, 3, 9}, S{50, kThreaded[1], kThreaded[0]}}) {
    std::vector<int> ids = rng.ints(s.N, 0, static_cast<int>(s.V - 1));
    ids.back() = static_cast<int>(s.V - 1);          // the last row
    if (s.N > 2) ids[1] = ids[0], ids[2] = 0;         // a repeated id (backward adds twice), row 0
    const Vec table = rng.uniform(s.V * s.C), out0 = rng.uniform(s.N * s.C), dout = rng.uniform(s.N * s.C);
    const Vec dtable0 = rng.uniform(s.V * s.C);
    const std::string shape = fmt::format("V={} C={} N={}", s.V, s.C, s.N);
    for (bool acc : {false, true}) {
      OpCase f{"embedding_forward", shape + (acc ? " accumulate" : "")};
      f.dtypes = kFloat;
      f.run = [=](Device d, DType t) {
        Tensor out = acc ? put({s.N, s.C}, in_dtype(out0, t), d, t) : poisoned({s.N, s.C}, d, t);
        ops::embedding_forward(put_ids(ids, d), put({s.V, s.C}, in_dtype(table, t), d, t), out, acc);
        return Outputs{{"out", out}};
      };
      f.reference = [=](DType t) {
        const Vec tt = in_dtype(table, t), o0 = in_dtype(out0, t);
        Vec out(static_cast<std::size_t>(s.N * s.C));
        for (I64 n = 0; n < s.N; ++n)
          for (I64 c = 0; c < s.C; ++c) out[n * s.C + c] = tt[ids[n] * s.C + c] + (acc ? o0[n * s.C + c] : 0.0);
        // A gather, or one f32 addition (then one rounding to the dtype): exact after rounding.
        return Expected{{"out", in_dtype(out, t)}};
      };
      f.tol = kExact;
      f.exact_everywhere = true;
      cases.push_back(f);
    }
    // dtable f32 (every dtype), and in the compute dtype (bf16/f16).
    for (bool grads_f32 : {true, false}) {
      OpCase b{"embedding_backward", shape + (grads_f32 ? "" : " dtable in the compute dtype")};
      b.dtypes = grads_f32 ? kFloat : k16;
      b.run = [=](Device d, DType t) {
        const DType gt = grads_f32 ? DType::f32 : t;
        Tensor dtable = put({s.V, s.C}, in_dtype(dtable0, gt), d, gt);
        ops::embedding_backward(put_ids(ids, d), put({s.N, s.C}, in_dtype(dout, t), d, t), dtable);
        return Outputs{{"dtable", dtable}};
      };
      b.reference = [=](DType t) {
        const Vec dt_out = in_dtype(dout, t);
        Vec dt = in_dtype(dtable0, grads_f32 ? DType::f32 : t);
        for (I64 n = 0; n < s.N; ++n)
          for (I64 c = 0; c < s.C; ++c) dt[ids[n] * s.C + c] += dt_out[n * s.C + c];
        return Expected{{"dtable", dt}};
      };
      b.tol = accumulation(s.N);  // up to N additions into one row
      cases.push_back(b);
    }
  }

  // The vocab-parallel shard: rows [first, first + rows) of the table; other ids give zero rows.
  for (const S s : {S{kGpt2Vocab, 5, 9}, S{11, 3, 7}}) {
    const I64 first = s.V / 3, rows = s.V / 3 + 1;
    std::vector<int> ids = rng.ints(s.N, 0, static_cast<int>(s.V - 1));
    ids[0] = static_cast<int>(first), ids[1] = static_cast<int>(first + rows - 1);  // both ends inside
    ids[2] = static_cast<int>(first - 1), ids[3] = static_cast<int>(first + rows);  // just outside
    ids[4] = ids[0];                                                                // repeated
    const Vec table = rng.uniform(rows * s.C), dout = rng.uniform(s.N * s.C), dtable0 = rng.uniform(rows * s.C);
    const std::string shape = fmt::format("V={} C={} N={} shard rows [{}, {})", s.V, s.C, s.N, first, first + rows);
    auto inside = [=](int id) { return id >= first && id < first + rows; };
    OpCase f{"embedding_shard_forward", shape};
    f.dtypes = kFloat;
    f.run = [=](Device d, DType t) {
      Tensor out = poisoned({s.N, s.C}, d, t);
      ops::embedding_shard_forward(put_ids(ids, d), put({rows, s.C}, in_dtype(table, t), d, t), first, out);
      return Outputs{{"out", out}};
    };
    f.reference = [=](DType t) {
      const Vec tt = in_dtype(table, t);
      Vec out(static_cast<std::size_t>(s.N * s.C), 0.0);
      for (I64 n = 0; n < s.N; ++n)
        if (inside(ids[n]))
          for (I64 c = 0; c < s.C; ++c) out[n * s.C + c] = tt[(ids[n] - first) * s.C + c];
      return Expected{{"out", out}};
    };
    f.tol = kExact;
    f.exact_everywhere = true;
    cases.push_back(f);
    for (bool grads_f32 : {true, false}) {
      OpCase b{"embedding_shard_backward", shape + (grads_f32 ? "" : " dtable in the compute dtype")};
      b.dtypes = grads_f32 ? kFloat : k16;
      b.run = [=](Device d, DType t) {
        const DType gt = grads_f32 ? DType::f32 : t;
        Tensor dtable = put({rows, s.C}, in_dtype(dtable0, gt), d, gt);
        ops::embedding_shard_backward(put_ids(ids, d), put({s.N, s.C}, in_dtype(dout, t), d, t), first, dtable);
        return Outputs{{"dtable", dtable}};
      };
      b.reference = [=](DType t) {
        const Vec dt_out = in_dtype(dout, t);
        Vec dt = in_dtype(dtable0, grads_f32 ? DType::f32 : t);
        for (I64 n = 0; n < s.N; ++n)
          if (inside(ids[n]))
            for (I64 c = 0; c < s.C; ++c) dt[(ids[n] - first) * s.C + c] += dt_out[n * s.C + c];
        return Expected{{"dtable", dt}};
      };
      b.tol = accumulation(3);
      cases.push_back(b);
    }
  }
}

// ---- losses, softmax -----------------------------------------------------------------------------

// Loss ≈ log V ≈ 11 from a double-accumulated Σ exp of f32 exps (≈ 1e-7 relative each): we allow 2e-5
// (about 20 f32 ulps at 11). Gradients are ≈ 1/V or ≈ −grad_scale, each a few f32 roundings.
const Tol kLossTol{2e-5, 2e-6};
const Tol kGradTol{1e-7, 1e-5};

void cross_entropy_cases(std::vector<OpCase>& cases) {
  Rng rng(17);
  const float grad_scale = 0.37f;
  struct S {
    I64 N, V;
    bool masked, grad;
  };
  for (const S s : {S{3, kGpt2Vocab, false, true}, S{3, kGpt2Vocab, true, true}, S{7, 11, true, true},
                    S{1, 13, false, true}, S{5, 11, false, false}}) {
    const Vec logits = rng.uniform(s.N * s.V, -4, 4);
    std::vector<int> targets = rng.ints(s.N, 0, static_cast<int>(s.V - 1));
    targets.back() = static_cast<int>(s.V - 1);
    Vec mask(static_cast<std::size_t>(s.N));
    for (I64 n = 0; n < s.N; ++n) mask[n] = n % 3 == 1 ? 0.0 : 1.0;
    OpCase c{"softmax_cross_entropy",
             fmt::format("N={} V={} mask={} grad={}", s.N, s.V, s.masked, s.grad)};
    c.run = [=](Device d, DType) {
      Tensor lg = put({s.N, s.V}, logits, d), losses = poisoned({s.N}, d);
      ops::softmax_cross_entropy(lg, put_ids(targets, d), s.masked ? put({s.N}, mask, d) : Tensor(), losses, s.grad,
                                 grad_scale);
      return Outputs{{"losses", losses}, {"logits", lg}};  // the gradient, or untouched logits
    };
    c.reference = [=](DType) {
      Vec losses, grad;
      ref::cross_entropy(logits, targets, s.masked ? &mask : nullptr, grad_scale, s.N, s.V, losses, grad);
      return Expected{{"losses", losses}, {"logits", s.grad ? grad : logits}};
    };
    c.tol = kLossTol;
    c.tol_for = {{"logits", s.grad ? kGradTol : kExact}};
    cases.push_back(c);
  }

  // The vocab-parallel loss, 2 or 3 shards simulated in one process: each shard's statistics, the
  // max and sum all-reduces done on the host (as f32, as the collectives would), then the loss and
  // the gradients, against the unsharded reference.
  struct Sh {
    I64 N, V, shards;
    bool masked;
  };
  for (const Sh s : {Sh{4, kGpt2Vocab, 3, false}, Sh{4, kGpt2Vocab, 2, true}, Sh{5, 11, 2, true}, Sh{1, 7, 3, false}}) {
    const Vec logits = rng.uniform(s.N * s.V, -4, 4);
    std::vector<int> targets = rng.ints(s.N, 0, static_cast<int>(s.V - 1));
    targets[0] = static_cast<int>(s.V - 1);
    Vec mask(static_cast<std::size_t>(s.N));
    for (I64 n = 0; n < s.N; ++n) mask[n] = n % 2 == 1 ? 0.0 : 1.0;
    std::vector<I64> first(static_cast<std::size_t>(s.shards + 1));  // shard k: [first[k], first[k+1])
    for (I64 k = 0; k <= s.shards; ++k) first[k] = k * s.V / s.shards;
    auto shard_of = [=](const Vec& full, I64 k) {
      const I64 w = first[k + 1] - first[k];
      Vec out(static_cast<std::size_t>(s.N * w));
      for (I64 n = 0; n < s.N; ++n)
        for (I64 j = 0; j < w; ++j) out[n * w + j] = full[n * s.V + first[k] + j];
      return out;
    };
    OpCase c{"cross_entropy_shard",
             fmt::format("N={} V={} shards={} mask={} (stats, rescale, loss, grad)", s.N, s.V, s.shards, s.masked)};
    c.needs = {"cross_entropy_shard_stats", "cross_entropy_shard_rescale", "cross_entropy_shard_loss",
               "cross_entropy_shard_grad"};
    c.run = [=](Device d, DType) {
      const Tensor tg = put_ids(targets, d);
      std::vector<Tensor> lg, mx, se, tl, sag;
      Outputs o;
      for (I64 k = 0; k < s.shards; ++k) {
        lg.push_back(put({s.N, first[k + 1] - first[k]}, shard_of(logits, k), d));
        mx.push_back(poisoned({s.N}, d)), se.push_back(poisoned({s.N}, d)), tl.push_back(poisoned({s.N}, d));
        ops::cross_entropy_shard_stats(lg[k], tg, first[k], mx[k], se[k], tl[k], /*keep_exp=*/true);
        o["row_max." + std::to_string(k)] = mx[k], o["sum_exp." + std::to_string(k)] = se[k];
        o["target_logit." + std::to_string(k)] = tl[k];
      }
      // The max all-reduce.
      std::vector<float> gmax(static_cast<std::size_t>(s.N), -INFINITY), gsum(gmax.size(), 0.0f), tsum(gmax.size(), 0.0f);
      for (I64 k = 0; k < s.shards; ++k) {
        const std::vector<float> m = mx[k].to_vector<float>(), t = tl[k].to_vector<float>();
        for (I64 n = 0; n < s.N; ++n) gmax[n] = std::max(gmax[n], m[n]), tsum[n] += t[n];
      }
      const Tensor global_max = put({s.N}, Vec(gmax.begin(), gmax.end()), d);
      for (I64 k = 0; k < s.shards; ++k) {
        sag.push_back(poisoned({s.N}, d));
        ops::cross_entropy_shard_rescale(mx[k], se[k], global_max, sag[k]);
        o["sum_at_global." + std::to_string(k)] = sag[k];
        const std::vector<float> part = sag[k].to_vector<float>();  // the sum all-reduce
        for (I64 n = 0; n < s.N; ++n) gsum[n] += part[n];
      }
      const Tensor global_sum = put({s.N}, Vec(gsum.begin(), gsum.end()), d);
      Tensor losses = poisoned({s.N}, d);
      ops::cross_entropy_shard_loss(global_max, global_sum, put({s.N}, Vec(tsum.begin(), tsum.end()), d), losses);
      o["losses"] = losses;
      for (I64 k = 0; k < s.shards; ++k) {
        ops::cross_entropy_shard_grad(lg[k], tg, first[k], s.masked ? put({s.N}, mask, d) : Tensor(), mx[k],
                                      global_max, global_sum, grad_scale);
        o["grad." + std::to_string(k)] = lg[k];
      }
      return o;
    };
    c.reference = [=](DType) {
      Vec losses, grad;
      ref::cross_entropy(logits, targets, s.masked ? &mask : nullptr, grad_scale, s.N, s.V, losses, grad);
      Expected e{{"losses", losses}};
      Vec gmax(static_cast<std::size_t>(s.N), -INFINITY);
      std::vector<Vec> mx;
      for (I64 k = 0; k < s.shards; ++k) {
        const I64 w = first[k + 1] - first[k];
        const Vec lg = shard_of(logits, k);
        Vec m(static_cast<std::size_t>(s.N), -INFINITY), se(m.size(), 0.0), tl(m.size(), 0.0);
        for (I64 n = 0; n < s.N; ++n) {
          for (I64 j = 0; j < w; ++j) m[n] = std::max(m[n], lg[n * w + j]);
          for (I64 j = 0; j < w; ++j) se[n] += std::exp(lg[n * w + j] - m[n]);
          if (targets[n] >= first[k] && targets[n] < first[k + 1]) tl[n] = lg[n * w + targets[n] - first[k]];
          gmax[n] = std::max(gmax[n], m[n]);
        }
        e["row_max." + std::to_string(k)] = m, e["sum_exp." + std::to_string(k)] = se;
        e["target_logit." + std::to_string(k)] = tl, e["grad." + std::to_string(k)] = shard_of(grad, k);
        mx.push_back(m);
      }
      for (I64 k = 0; k < s.shards; ++k) {
        Vec sag = e["sum_exp." + std::to_string(k)];
        for (I64 n = 0; n < s.N; ++n) sag[n] *= std::exp(mx[k][n] - gmax[n]);
        e["sum_at_global." + std::to_string(k)] = sag;
      }
      return e;
    };
    // Σ exp over up to V/2 terms accumulates in double on the CPU, rounded to f32 once; a backend
    // summing in f32 would need ~V·6e-8 ≈ 3e-3 relative — we require the double-accumulated contract.
    c.tol = kLossTol;
    for (I64 k = 0; k < s.shards; ++k) {
      c.tol_for["sum_exp." + std::to_string(k)] = {1e-6, 1e-6};
      c.tol_for["sum_at_global." + std::to_string(k)] = {1e-6, 1e-6};
      c.tol_for["grad." + std::to_string(k)] = kGradTol;
      c.tol_for["row_max." + std::to_string(k)] = kExact;
      c.tol_for["target_logit." + std::to_string(k)] = kExact;
    }
    cases.push_back(c);
  }

  // Statistics without keep_exp leave the logits alone.
  {
    const I64 N = 3, V = 19, first = 7;
    const Vec logits = rng.uniform(N * V, -4, 4);
    const std::vector<int> targets = {8, 2, 7 + 19};  // inside, before and after the shard
    OpCase c{"cross_entropy_shard_stats", fmt::format("N={} V={} first_id={} without keep_exp", N, V, first)};
    c.run = [=](Device d, DType) {
      Tensor lg = put({N, V}, logits, d), mx = poisoned({N}, d), se = poisoned({N}, d), tl = poisoned({N}, d);
      ops::cross_entropy_shard_stats(lg, put_ids(targets, d), first, mx, se, tl, /*keep_exp=*/false);
      return Outputs{{"logits", lg}, {"row_max", mx}, {"sum_exp", se}, {"target_logit", tl}};
    };
    c.reference = [=](DType) {
      Vec mx(N, -INFINITY), se(N, 0.0), tl(N, 0.0);
      for (I64 n = 0; n < N; ++n) {
        for (I64 j = 0; j < V; ++j) mx[n] = std::max(mx[n], logits[n * V + j]);
        for (I64 j = 0; j < V; ++j) se[n] += std::exp(logits[n * V + j] - mx[n]);
      }
      tl[0] = logits[0 * V + 8 - first];
      return Expected{{"logits", logits}, {"row_max", mx}, {"sum_exp", se}, {"target_logit", tl}};
    };
    c.tol = kExact;
    c.tol_for = {{"sum_exp", {1e-6, 1e-6}}};
    cases.push_back(c);
  }

  for (auto [N, C, alias] : {std::tuple<I64, I64, bool>{5, 13, false}, {1, kGpt2Vocab, false}, {3, 7, true}}) {
    const Vec x = rng.uniform(N * C, -5, 5);
    OpCase c{"softmax", fmt::format("N={} C={}{}", N, C, alias ? " out aliases x" : "")};
    c.run = [=](Device d, DType) {
      Tensor in = put({N, C}, x, d), out = alias ? in : poisoned({N, C}, d);
      ops::softmax(in, out);
      return Outputs{{"out", out}};
    };
    c.reference = [=](DType) { return Expected{{"out", ref::softmax_rows(x, N, C)}}; };
    c.tol = {1e-8, 1e-5};  // f32 exps, double or f32 normaliser, one division
    cases.push_back(c);
  }
}

// ---- elementwise, copies, reductions, adam -------------------------------------------------------

void elementwise_cases(std::vector<OpCase>& cases) {
  Rng rng(18);
  for (const Shape& shape : {Shape{37}, Shape{1}, Shape{5, 13}, kThreaded}) {
    const I64 n = shape_numel(shape);
    const Vec a = rng.uniform(n), b = rng.uniform(n);
    const std::string sh = shape_str(shape);
    // want(ra, rb, t): the reference from a and b rounded to t.
    auto add_case = [&](std::string op, std::string what, std::function<Outputs(Device, DType, const Vec&, const Vec&)> run,
                        std::function<Vec(const Vec&, const Vec&, DType)> want) {
      OpCase c{std::move(op), sh + what};
      c.dtypes = kFloat;
      c.run = [=](Device d, DType t) { return run(d, t, in_dtype(a, t), in_dtype(b, t)); };
      c.reference = [name = c.op == "add" ? "out" : (c.op == "scale" ? "x" : "y"), want, a, b](DType t) {
        return Expected{{name, want(in_dtype(a, t), in_dtype(b, t), t)}};
      };
      c.tol = kElementwise;
      cases.push_back(c);
    };
    auto sum = [](const Vec& a, const Vec& b, DType) {
      Vec out(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
      return out;
    };
    add_case("add", "", [=](Device d, DType t, const Vec& a, const Vec& b) {
      Tensor out = poisoned(shape, d, t);
      ops::add(put(shape, a, d, t), put(shape, b, d, t), out);
      return Outputs{{"out", out}};
    }, sum);
    add_case("add", " out aliases a", [=](Device d, DType t, const Vec& a, const Vec& b) {
      Tensor out = put(shape, a, d, t);
      ops::add(out, put(shape, b, d, t), out);
      return Outputs{{"out", out}};
    }, sum);
    add_case("axpy", " alpha=-0.75", [=](Device d, DType t, const Vec& a, const Vec& b) {
      Tensor y = put(shape, b, d, t);
      ops::axpy(-0.75f, put(shape, a, d, t), y);
      return Outputs{{"y", y}};
    }, [](const Vec& a, const Vec& b, DType) {
      Vec out(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) out[i] = b[i] - 0.75 * a[i];
      return out;
    });
    add_case("scale", " s=-1.5", [=](Device d, DType t, const Vec& a, const Vec&) {
      Tensor x = put(shape, a, d, t);
      ops::scale(x, -1.5f);
      return Outputs{{"x", x}};
    }, [](const Vec& a, const Vec&, DType) {
      Vec out(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) out[i] = a[i] * -1.5;
      return out;
    });
    const I64 C = shape.back();
    const Vec bias = rng.uniform(C);
    add_case("add_bias", fmt::format(" bias [{}]", C), [=](Device d, DType t, const Vec& a, const Vec&) {
      Tensor y = put(shape, a, d, t);
      ops::add_bias(y, put({C}, in_dtype(bias, t), d, t));
      return Outputs{{"y", y}};
    }, [=](const Vec& a, const Vec&, DType t) {
      const Vec bt = in_dtype(bias, t);
      Vec out = a;
      for (I64 i = 0; i < n; ++i) out[i] += bt[i % C];
      return out;
    });
  }
}

// Mixture-of-experts dispatch: scale_rows (f32 weights per row; in place too) and row_dot (f32 out).
void row_cases(std::vector<OpCase>& cases) {
  Rng rng(31);
  for (const auto& [N, C] : std::vector<std::pair<I64, I64>>{{1, 1}, {7, 33}, {0, 5}, {300, 257}}) {
    const Shape shape{N, C};
    const Vec x = rng.uniform(N * C), y = rng.uniform(N * C), w = rng.uniform(N);
    for (const bool in_place : {false, true}) {
      OpCase s{"scale_rows", shape_str(shape) + (in_place ? " in place" : "")};
      s.dtypes = kFloat;
      s.run = [=](Device d, DType t) {
        Tensor in = put(shape, in_dtype(x, t), d, t);
        Tensor out = in_place ? in : poisoned(shape, d, t);
        ops::scale_rows(in, put({N}, w, d, DType::f32), out);
        return Outputs{{"out", out}};
      };
      s.reference = [=](DType t) {
        Vec out = in_dtype(x, t);
        for (I64 i = 0; i < N * C; ++i) out[i] *= w[i / C];
        return Expected{{"out", out}};
      };
      s.tol = kElementwise;
      cases.push_back(s);
    }
    OpCase r{"row_dot", shape_str(shape)};
    r.dtypes = kFloat;
    r.run = [=](Device d, DType t) {
      Tensor out = poisoned({N}, d, DType::f32);
      ops::row_dot(put(shape, in_dtype(x, t), d, t), put(shape, in_dtype(y, t), d, t), out);
      return Outputs{{"out", out}};
    };
    r.reference = [=](DType t) {
      const Vec a = in_dtype(x, t), b = in_dtype(y, t);
      Vec out(static_cast<std::size_t>(N), 0.0);
      for (I64 i = 0; i < N * C; ++i) out[i / C] += a[i] * b[i];
      return Expected{{"out", out}};
    };
    r.tol = accumulation(C);
    cases.push_back(r);
  }
}

// Copies move bits: every dtype, compared exactly (the 16-bit float types as bit patterns).
void copy_cases(std::vector<OpCase>& cases) {
  Rng rng(19);
  auto values = [&](I64 n, DType t) {
    Vec v(static_cast<std::size_t>(n));
    const std::vector<int> bits = rng.ints(n, 0, 0xfffe);
    for (I64 i = 0; i < n; ++i) {
      switch (t) {
        case DType::bf16:
        case DType::f16:
        case DType::u8: v[i] = bits[i] % (t == DType::u8 ? 251 : 0x7f00); break;  // never the sentinel
        case DType::i32:
        case DType::i64: v[i] = bits[i] - 30000; break;
        default: v[i] = static_cast<float>((bits[i] - 30000) * 1.37e-3);
      }
    }
    return v;
  };
  std::map<DType, std::map<I64, Vec>> data;  // fixed host values per dtype and size
  for (DType t : kAllDTypes)
    for (I64 n : {37, 1, 24, 23}) data[t][n] = values(n, t);

  for (const Shape& shape : {Shape{37}, Shape{1}}) {
    OpCase c{"copy", shape_str(shape) + " device→device, host→device, device→host"};
    c.dtypes = kAllDTypes;
    c.bits = true;
    c.run = [=](Device d, DType t) {
      const Vec& v = data.at(t).at(shape_numel(shape));
      Tensor dst = poisoned(shape, d, t), from_host = poisoned(shape, d, t), to_host = poisoned(shape, Device::cpu(), t);
      ops::copy(put_bits(shape, v, d, t), dst);
      ops::copy(put_bits(shape, v, Device::cpu(), t), from_host);
      ops::copy(put_bits(shape, v, d, t), to_host);
      return Outputs{{"dst", dst}, {"from_host", from_host}, {"to_host", to_host}};
    };
    c.reference = [=](DType t) {
      const Vec& v = data.at(t).at(shape_numel(shape));
      return Expected{{"dst", v}, {"from_host", v}, {"to_host", v}};
    };
    c.tol = kExact;
    c.exact_everywhere = true;
    cases.push_back(c);
  }

  struct Block {
    I64 src_n, src_off, src_stride, dst_n, dst_off, dst_stride, rows, cols;
  };
  for (const Block k : {Block{23, 2, 7, 24, 1, 6, 3, 5}, Block{24, 0, 13, 23, 5, 13, 1, 13}, Block{23, 3, 5, 24, 0, 6, 4, 1},
                        Block{24, 0, 4, 24, 0, 4, 6, 4}}) {
    OpCase c{"copy_2d", fmt::format("{} rows × {} cols, src [{}] from {} stride {}, dst [{}] from {} stride {}", k.rows,
                                    k.cols, k.src_n, k.src_off, k.src_stride, k.dst_n, k.dst_off, k.dst_stride)};
    c.dtypes = kAllDTypes;
    c.bits = true;
    c.run = [=](Device d, DType t) {
      Tensor dst = poisoned({k.dst_n}, d, t);  // outside the block it must stay poisoned
      ops::copy_2d(put_bits({k.src_n}, data.at(t).at(k.src_n), d, t), k.src_off, k.src_stride, dst, k.dst_off, k.dst_stride,
                   k.rows, k.cols);
      return Outputs{{"dst", dst}};
    };
    c.reference = [=](DType t) {
      const Vec& src = data.at(t).at(k.src_n);
      Vec dst(static_cast<std::size_t>(k.dst_n), poison_value(t));
      for (I64 r = 0; r < k.rows; ++r)
        for (I64 j = 0; j < k.cols; ++j) dst[k.dst_off + r * k.dst_stride + j] = src[k.src_off + r * k.src_stride + j];
      return Expected{{"dst", dst}};
    };
    c.tol = kExact;
    c.exact_everywhere = true;
    cases.push_back(c);
  }

  for (auto [n, start, period] : {std::tuple<I64, I64, I64>{37, 5, 7}, {1, 100, 3}, {13, 50250, kGpt2Vocab}}) {
    OpCase c{"arange_mod", fmt::format("[{}] start={} period={}", n, start, period)};
    c.dtypes = {DType::i32};
    c.run = [=](Device d, DType) {
      Tensor out = poisoned({n}, d, DType::i32);
      ops::arange_mod(out, start, period);
      return Outputs{{"out", out}};
    };
    c.reference = [=](DType) {
      Vec out(static_cast<std::size_t>(n));
      for (I64 i = 0; i < n; ++i) out[i] = static_cast<double>((start + i) % period);
      return Expected{{"out", out}};
    };
    c.tol = kExact;
    c.exact_everywhere = true;
    cases.push_back(c);
  }
}

// ---- cast ----------------------------------------------------------------------------------------

// The float formats as bit fields, decoded and rounded here by hand — not with half.hpp, which is
// what the CPU's kernels use — so a wrong conversion there cannot agree with itself.
struct FloatFormat {
  int exp_bits, man_bits;
};
FloatFormat format_of(DType t) {
  return t == DType::f32 ? FloatFormat{8, 23} : t == DType::bf16 ? FloatFormat{8, 7} : FloatFormat{5, 10};
}
// The value of the bit pattern `bits` of `t` (±0, subnormals, ±∞ and NaN included).
double decode(std::uint32_t bits, DType t) {
  const auto [E, M] = format_of(t);
  const int bias = (1 << (E - 1)) - 1;
  const std::uint32_t e = (bits >> M) & ((1u << E) - 1), m = bits & ((1u << M) - 1);
  const bool negative = (bits >> (E + M)) & 1u;
  double v;
  if (e == (1u << E) - 1)
    v = m == 0 ? INFINITY : NAN;
  else if (e == 0)
    v = std::ldexp(static_cast<double>(m), 1 - bias - M);
  else
    v = std::ldexp(static_cast<double>(m + (1u << M)), static_cast<int>(e) - bias - M);
  return negative ? -v : v;
}
// x rounded to the nearest value of `t`, ties to even; past the largest finite value ± half an ulp,
// ±∞ (IEEE 754 round to nearest even, subnormals included).
double round_to_format(double x, DType t) {
  if (std::isnan(x) || std::isinf(x) || x == 0) return x;
  const auto [E, M] = format_of(t);
  const int bias = (1 << (E - 1)) - 1, emin = 1 - bias;
  const double ulp = std::ldexp(1.0, std::max(std::ilogb(x), emin) - M);  // exact scaling by a power of 2
  const double r = std::nearbyint(x / ulp) * ulp;                           // the default mode: ties to even
  const double max_finite = std::ldexp(2.0 - std::ldexp(1.0, -M), bias);
  if (std::abs(r) > max_finite) return std::copysign(INFINITY, x);
  return r == 0 ? std::copysign(0.0, x) : r;
}
std::uint32_t f32_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
// A tensor of `t` holding the bit patterns `bits` (the low 16 bits for bf16/f16): NaN payloads and
// signalling NaNs as given.
Tensor put_raw(const std::vector<std::uint32_t>& bits, DType t, Device device) {
  Tensor h = Tensor::empty({static_cast<I64>(bits.size())}, t);
  for (std::size_t i = 0; i < bits.size(); ++i) {
    if (t == DType::f32)
      std::memcpy(static_cast<char*>(h.raw()) + 4 * i, &bits[i], 4);
    else
      static_cast<std::uint16_t*>(h.raw())[i] = static_cast<std::uint16_t>(bits[i]);
  }
  return h.to(device);
}

// cast between f32, bf16 and f16 in every direction, compared exactly with the rounding above (to
// 16 bits: round to nearest even; widening: exact), and by property: the sign of every non-NaN
// result (−0 stays −0) is the reference's, and conversions that round give quiet NaNs (half.hpp's
// contract), even from signalling ones.
void cast_cases(std::vector<OpCase>& cases) {
  // f32 sources: each rounding case of both 16-bit formats.
  std::vector<std::uint32_t> f32_special = {
      0x3f800000, 0xbf800000,  // ±1: exact
      0x3f808000,              // bf16: a tie, to the even neighbour below (1.0)
      0x3f818000,              // bf16: a tie, to the even neighbour above
      0x3f808001, 0x3f807fff,  // bf16: just above / below a tie
      0x3fffffff,              // rounds up into the next binade (2.0)
      0x7f7fffff, 0xff7fffff,  // ±FLT_MAX: bf16 ±∞ (past max + ½ ulp), f16 ±∞
      0x7f7f7fff,              // bf16: down to its largest finite value
      0x00000001, 0x00008000, 0x00018000, 0x80008000, 0x007fffff,  // f32 subnormals: bf16 ties, ±0
      0x00000000, 0x80000000,                                      // ±0
      0x7f800000, 0xff800000,                                      // ±∞
      0x7fc00000, 0xffc00000, 0x7fc00001,                          // quiet NaNs
      0x7f800001, 0xff800001, 0x7fbfffff, 0x7f810000,              // signalling NaNs (must not become ∞)
  };
  for (float f : {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f, 1.0f + 0x1p-11f - 0x1p-23f,  // f16 ties and near ties
                  65504.0f, 65519.0f, 65520.0f, -65520.0f, 65535.0f, 1e5f, -1e5f,  // f16: largest, down to it, overflow
                  0x1p-24f, 0x1p-25f, 3 * 0x1p-25f, 0x1p-25f + 0x1p-30f, 1.5f * 0x1p-24f,    // f16 subnormals and ties
                  0x1p-14f, 0x1p-14f - 0x1p-25f, 6.0e-5f, -0x1p-26f, 1e-10f, -1e-10f,        // around the smallest normal
                  0.1f, -3.14159265f, 1.0f / 3.0f, 1000.7f, -2.5f})
    f32_special.push_back(f32_bits(f));
  // More than 2¹⁶ random f32 values (the kernels' threaded path) of magnitudes 2⁻³⁰ … 2¹⁷.
  std::vector<std::uint32_t> f32_random;
  {
    Rng rng(23);
    const Vec m = rng.uniform(70001, 1.0, 2.0);
    const std::vector<int> e = rng.ints(70001, -30, 17), sign = rng.ints(70001, 0, 1);
    for (std::size_t i = 0; i < m.size(); ++i)
      f32_random.push_back(f32_bits(static_cast<float>(std::ldexp(sign[i] ? -m[i] : m[i], e[i]))));
  }
  // 16-bit sources: every bit pattern, then the first 256 again (past 2¹⁶ elements).
  std::vector<std::uint32_t> every16;
  for (std::uint32_t b = 0; b < 0x10000; ++b) every16.push_back(b);
  for (std::uint32_t b = 0; b < 0x100; ++b) every16.push_back(b);
  // Same-dtype casts (copies): the edges of both 16-bit formats (as either one).
  const std::vector<std::uint32_t> special16 = {
      0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x7c01, 0x7e00,  // f16: subnormals, max, ±∞, NaNs
      0x007f, 0x0080, 0x7f7f, 0x7f80, 0xff80, 0x7f81, 0x7fc0,                                  // bf16: the same
      0x3c00, 0x3f80, 0x4049, 0x3555, 0xc8f5, 0x1234, 0x5678, 0x9abc, 0xdef0};

  struct Row {
    DType src, dst;
    std::string what;
    std::vector<std::uint32_t> bits;
  };
  std::vector<Row> rows = {
      {DType::f32, DType::f32, "special values", f32_special},
      {DType::f32, DType::bf16, "special values", f32_special},
      {DType::f32, DType::bf16, "70001 random values", f32_random},
      {DType::f32, DType::f16, "special values", f32_special},
      {DType::f32, DType::f16, "70001 random values", f32_random},
      {DType::bf16, DType::f32, "every bit pattern", every16},
      {DType::f16, DType::f32, "every bit pattern", every16},
      {DType::bf16, DType::f16, "every bit pattern", every16},
      {DType::f16, DType::bf16, "every bit pattern", every16},
      {DType::bf16, DType::bf16, "special values", special16},
      {DType::f16, DType::f16, "special values", special16},
  };
  for (const Row& r : rows) {
    OpCase c{"cast", fmt::format("{}→{} [{}] {}", dtype_name(r.src), dtype_name(r.dst), r.bits.size(), r.what)};
    // A row runs under its 16-bit side's dtype (f32→f32 under f32); the backend must claim both.
    const DType key = r.dst != DType::f32 ? r.dst : r.src;
    c.dtypes = {key};
    if (r.src != key) c.also_claims = {r.src};
    const Row row = r;
    c.run = [row](Device d, DType) {
      Tensor dst = poisoned({static_cast<I64>(row.bits.size())}, d, row.dst);
      ops::cast(put_raw(row.bits, row.src, d), dst);
      return Outputs{{"dst", dst}};
    };
    auto want = [row] {
      Vec v(row.bits.size());
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = round_to_format(decode(row.bits[i], row.src), row.dst);
      return v;
    };
    c.reference = [want](DType) { return Expected{{"dst", want()}}; };
    c.property = [row, want](const HostOuts& o, DType) -> std::string {
      const Vec w = want(), &got = o.at("dst").values;
      const std::vector<unsigned char>& bytes = o.at("dst").bytes;
      // Narrowing conversions must quiet NaNs: the top mantissa bit set.
      const bool rounds = row.dst != DType::f32 && row.src != row.dst;
      const std::uint32_t quiet_bit = 1u << (format_of(row.dst).man_bits - 1);
      for (std::size_t i = 0; i < w.size(); ++i) {
        if (std::isnan(w[i])) {
          std::uint16_t b;
          std::memcpy(&b, bytes.data() + 2 * i, 2);
          if (rounds && !(b & quiet_bit))
            return fmt::format("[{}]: source bits {:#x} give {:#06x}, not a quiet NaN", i, row.bits[i], b);
        } else if (std::signbit(got[i]) != std::signbit(w[i])) {
          return fmt::format("[{}]: source bits {:#x} give {} instead of {}", i, row.bits[i], got[i], w[i]);
        }
      }
      return "";
    };
    c.tol = kExact;
    c.exact_everywhere = true;
    cases.push_back(c);
  }
}

// Reductions into f64 [1], accumulated in double: only the order of the additions may differ. sum
// and sum_squares take every compute dtype (the sum of the rounded values), masked_sum and
// count_zeros only f32.
void reduction_cases(std::vector<OpCase>& cases) {
  Rng rng(20);
  for (const Shape& shape : {Shape{37}, Shape{1}, Shape{5, 13}, kThreaded}) {
    const I64 n = shape_numel(shape);
    const Vec x = rng.uniform(n);
    Vec mask(x.size());
    for (I64 i = 0; i < n; ++i) mask[i] = i % 4 == 2 ? 0.0 : 1.0;
    const double start = 1.25;
    for (bool acc : {false, true}) {
      const std::string sh = shape_str(shape) + (acc ? " accumulate onto 1.25" : "");
      // want(x rounded to the dtype): the exact result.
      auto add_case = [&](const char* op, std::vector<DType> dtypes, std::function<void(Device, DType, Tensor&)> run,
                          std::function<double(const Vec&)> want) {
        OpCase c{op, sh};
        c.dtypes = dtypes;
        c.run = [=](Device d, DType t) {
          Tensor out = acc ? put({1}, {start}, d, DType::f64) : poisoned({1}, d, DType::f64);
          run(d, t, out);
          return Outputs{{"out", out}};
        };
        c.reference = [=](DType t) { return Expected{{"out", {want(in_dtype(x, t)) + (acc ? start : 0.0)}}}; };
        c.tol = {1e-12, 1e-12};
        cases.push_back(c);
      };
      add_case("sum", kFloat, [=](Device d, DType t, Tensor& out) { ops::sum(put(shape, in_dtype(x, t), d, t), out, acc); },
               [](const Vec& v) {
                 double s = 0;
                 for (double e : v) s += e;
                 return s;
               });
      add_case("sum_squares", kFloat,
               [=](Device d, DType t, Tensor& out) { ops::sum_squares(put(shape, in_dtype(x, t), d, t), out, acc); },
               [](const Vec& v) {
                 double s = 0;
                 for (double e : v) s += e * e;
                 return s;
               });
      add_case("masked_sum", kF32,
               [=](Device d, DType, Tensor& out) { ops::masked_sum(put(shape, x, d), put(shape, mask, d), out, acc); },
               [=](const Vec& v) {
                 double s = 0;
                 for (I64 i = 0; i < n; ++i) s += v[i] * mask[i];
                 return s;
               });
      // Zeros (and −0) where the mask has them, among values that are not.
      Vec holes = x;
      for (I64 i = 0; i < n; ++i)
        if (mask[i] == 0.0) holes[i] = i % 8 == 2 ? -0.0 : 0.0;
      add_case("count_zeros", kF32, [=](Device d, DType, Tensor& out) { ops::count_zeros(put(shape, holes, d), out, acc); },
               [=](const Vec&) {
                 double s = 0;
                 for (double e : holes) s += e == 0.0 ? 1.0 : 0.0;
                 return s;
               });
    }
  }
}

void adam_cases(std::vector<OpCase>& cases) {
  Rng rng(21);
  struct S {
    I64 n;
    bool decoupled;
    float weight_decay, grad_scale;
    I64 step;
  };
  for (const S s : {S{37, true, 0.1f, 1.0f, 1}, S{37, true, 0.0f, 0.5f, 7}, S{37, false, 0.1f, 0.8f, 3},
                    S{1, false, 0.0f, 1.0f, 2}, S{65, true, 0.01f, 0.25f, 1000},
                    S{shape_numel(kThreaded), true, 0.1f, 1.0f, 2}}) {
    const Vec param = rng.uniform(s.n), grad = rng.uniform(s.n), m0 = rng.uniform(s.n, -0.1, 0.1),
              v0 = rng.uniform(s.n, 0.0, 0.01);
    ops::AdamParams p;
    p.lr = 3e-3f, p.weight_decay = s.weight_decay, p.grad_scale = s.grad_scale, p.step = s.step;
    p.decoupled = s.decoupled;
    OpCase c{"adam_step", fmt::format("[{}] {} weight_decay={} grad_scale={} step={}", s.n,
                                      s.decoupled ? "AdamW" : "Adam", s.weight_decay, s.grad_scale, s.step)};
    c.run = [=](Device d, DType) {
      Tensor pt = put({s.n}, param, d), m = put({s.n}, m0, d), v = put({s.n}, v0, d);
      ops::adam_step(pt, put({s.n}, grad, d), m, v, p);
      return Outputs{{"param", pt}, {"m", m}, {"v", v}};
    };
    c.reference = [=](DType) {
      Vec pr = param, m = m0, v = v0;
      ref::adam_step({p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, p.grad_scale, p.step, p.decoupled}, pr, grad, m, v);
      return Expected{{"param", pr}, {"m", m}, {"v", v}};
    };
    // A dozen f32 operations per element (pow, sqrt, one division) on O(1) values.
    c.tol = {1e-6, 1e-5};
    cases.push_back(c);
  }
}

// ==== attention (flash-style contract: lse [B,Hq,Tq] saved; key masks; cross attention) ============
struct AttentionRow {
  ops::AttentionShape s;
  std::vector<std::uint8_t> mask;  // [B,Tk]; empty: every key
  const char* what;
};

void attention_cases(std::vector<OpCase>& cases) {
  Rng rng(22);
  // Masks: batch row 1 attends no key (output 0, zero grads); the other rows drop a few keys.
  const std::vector<std::uint8_t> masked_2x6 = {1, 0, 1, 1, 0, 1, /* row 1 */ 0, 0, 0, 0, 0, 0};
  std::vector<std::uint8_t> masked_1x65(65, 1);
  for (std::size_t j = 60; j < 65; ++j) masked_1x65[j] = 0;  // padding at the end, as BERT's
  const std::vector<AttentionRow> rows = {
      {{2, 5, 5, 6, 2, 4, true}, {}, "GQA, 3 query heads per group"},
      {{1, 7, 7, 4, 1, 3, true}, {}, "MQA"},
      {{2, 3, 3, 3, 3, 5, true}, {}, "MHA"},
      {{3, 1, 1, 4, 2, 8, true}, {}, "T = 1"},
      {{1, 6, 6, 2, 1, 4, false}, {}, "not causal"},
      {{1, 65, 65, 2, 2, 8, true}, {}, "T past one 64-key tile"},
      {{2, 4, 6, 4, 2, 5, false}, {}, "cross attention, Tk > Tq"},
      {{1, 7, 3, 2, 1, 4, false}, {}, "cross attention, Tk < Tq"},
      {{2, 6, 6, 2, 1, 3, false}, masked_2x6, "padding-masked, a row with no key"},
      {{2, 6, 6, 4, 2, 3, true}, masked_2x6, "causal and padding-masked"},
      {{1, 65, 65, 3, 1, 8, false}, masked_1x65, "padding at the end, past one tile"},
      // Head sizes a GPU runs on its tensor cores in bf16/f16 (the cuda backend's D = 64 and 128
      // kernels): partial tiles, GQA, cross attention and padding.
      {{2, 70, 70, 4, 2, 64, true}, {}, "D = 64, GQA, partial tiles"},
      {{1, 65, 65, 3, 1, 64, false}, masked_1x65, "D = 64, padding at the end"},
      {{1, 33, 47, 2, 1, 128, false}, {}, "D = 128, cross attention"},
      {{1, 40, 40, 2, 2, 128, true}, {}, "D = 128, causal"},
      // Heads past 128 channels (model.kv_channels makes them easy to ask for): the cuda backend's
      // 256-wide FFMA tiles.
      {{1, 40, 40, 2, 1, 192, true}, {}, "D = 192, MQA, causal"},
      {{1, 33, 33, 2, 2, 256, false}, {}, "D = 256, not causal"},
  };
  for (const AttentionRow& row : rows) {
    const ops::AttentionShape& s = row.s;
    const ref::Attn a{s.B, s.Tq, s.Tk, s.Hq, s.Hkv, s.D, s.causal, row.mask};
    const I64 qc = s.Hq * s.D, kvc = 2 * s.Hkv * s.D;
    const Vec q = rng.uniform(s.B * s.Tq * qc, -2, 2), kv = rng.uniform(s.B * s.Tk * kvc, -2, 2);
    const Vec dout = rng.uniform(s.B * s.Tq * qc);
    const std::string shape = fmt::format("B={} Tq={} Tk={} Hq={} Hkv={} D={} ({})", s.B, s.Tq, s.Tk, s.Hq, s.Hkv,
                                          s.D, row.what);
    const std::vector<std::uint8_t> mask = row.mask;
    auto key_mask = [mask, s](Device d) {
      if (mask.empty()) return Tensor();
      return Tensor::from<std::uint8_t>({s.B, s.Tk}, mask).to(d);
    };
    OpCase f{"attention_forward", shape};
    f.dtypes = kFloat;
    f.run = [=](Device d, DType t) {
      // lse is f32 whatever the compute dtype.
      Tensor out = poisoned({s.B, s.Tq, qc}, d, t), lse = poisoned({s.B, s.Hq, s.Tq}, d);
      ops::attention_forward(s, put({s.B, s.Tq, qc}, in_dtype(q, t), d, t), put({s.B, s.Tk, kvc}, in_dtype(kv, t), d, t),
                             key_mask(d), out, lse);
      return Outputs{{"out", out}, {"lse", lse}};
    };
    f.reference = [=](DType t) {
      Vec out, lse;
      ref::attention_forward(a, in_dtype(q, t), in_dtype(kv, t), out, lse);
      return Expected{{"out", out}, {"lse", lse}};
    };
    f.tol = accumulation(std::max(s.Tk, s.D));  // scores: D products; outputs: Tk products
    cases.push_back(f);

    // Backward takes the reference's output (rounded to the dtype) and lse (as f32) of the rounded
    // inputs, so it is tested on its own.
    std::map<DType, std::pair<Vec, Vec>> saved;  // dtype → (out, lse)
    for (DType t : kFloat) {
      Vec ref_out, ref_lse;
      ref::attention_forward(a, in_dtype(q, t), in_dtype(kv, t), ref_out, ref_lse);
      saved[t] = {in_dtype(ref_out, t), as_f32(ref_lse)};
    }
    OpCase b{"attention_backward", shape};
    b.dtypes = kFloat;
    b.run = [=](Device d, DType t) {
      const auto& [out, lse] = saved.at(t);
      Tensor dq = poisoned({s.B, s.Tq, qc}, d, t), dkv = poisoned({s.B, s.Tk, kvc}, d, t);
      ops::attention_backward(s, put({s.B, s.Tq, qc}, in_dtype(dout, t), d, t), put({s.B, s.Tq, qc}, in_dtype(q, t), d, t),
                              put({s.B, s.Tk, kvc}, in_dtype(kv, t), d, t), key_mask(d), put({s.B, s.Tq, qc}, out, d, t),
                              put({s.B, s.Hq, s.Tq}, lse, d), dq, dkv);
      return Outputs{{"dq", dq}, {"dkv", dkv}};
    };
    b.reference = [=](DType t) {
      Vec dq, dkv;
      // In bf16/f16 the rounded out backward receives differs from the exact one by up to 2⁻⁸: the
      // reference uses it too (f32 rows keep the exact probabilities, as before).
      ref::attention_backward(a, in_dtype(dout, t), in_dtype(q, t), in_dtype(kv, t), dq, dkv,
                              is16(t) ? &saved.at(t).first : nullptr);
      return Expected{{"dq", dq}, {"dkv", dkv}};
    };
    // dk, dv sum over Tq queries × Hq/Hkv heads, each term a D-long product.
    b.tol = accumulation(s.Tq * (s.Hq / s.Hkv) + s.D);
    cases.push_back(b);
  }
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cases;
  matmul_cases(cases);
  linear_cases(cases);
  layer_norm_cases(cases);
  activation_cases(cases);
  rms_norm_cases(cases);
  swiglu_cases(cases);
  rope_cases(cases);
  dropout_cases(cases);
  embedding_cases(cases);
  cross_entropy_cases(cases);
  elementwise_cases(cases);
  row_cases(cases);
  copy_cases(cases);
  cast_cases(cases);
  reduction_cases(cases);
  adam_cases(cases);
  attention_cases(cases);
  return cases;
}

// ---- the harness ---------------------------------------------------------------------------------

struct BackendUnderTest {
  std::string name;
  Device device;
};

// The CPU, then every backend plugin on the search path that loads and has a device here.
std::vector<BackendUnderTest> backends_with_device() {
  std::vector<BackendUnderTest> out = {{"cpu", Device::cpu()}};
  for (const PluginInfo& info : available_plugins("backend")) {
    try {
      const Device d = device_named(info.name);
      if (backend_of(d).device_count() > 0)
        out.push_back({info.name, d});
      else
        fmt::print("backend {}: no device here, skipped\n", info.name);
    } catch (const Error& e) {
      fmt::print("backend {}: does not load here ({}), skipped\n", info.name, e.what());
    }
  }
  return out;
}

// "" when every element is within tolerance, else the first bad element and a count.
std::string compare(const Vec& got, const Vec& want, Tol tol) {
  if (got.size() != want.size()) return fmt::format("{} elements, the reference has {}", got.size(), want.size());
  I64 bad = 0, first = -1;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    // NaN only matches NaN, an infinity only itself (lse of a row that attends no key is −∞).
    const bool ok = std::isnan(want[i])   ? std::isnan(got[i])
                    : std::isinf(want[i]) ? got[i] == want[i]
                                          : std::abs(got[i] - want[i]) <= tol.abs + tol.rel * std::abs(want[i]);
    if (ok) continue;
    if (bad++ == 0) first = static_cast<I64>(i);
    worst = std::max(worst, std::isnan(got[i]) ? INFINITY : std::abs(got[i] - want[i]));
  }
  if (bad == 0) return "";
  return fmt::format("{} of {} elements off (tolerance abs {} rel {}); first [{}] = {} vs {}; worst error {}", bad,
                     got.size(), tol.abs, tol.rel, first, got[first], want[first], worst);
}

// The rule for bf16/f16 outputs (rel_l2_tolerance): ‖got − want‖₂ ≤ tol·‖want‖₂, every element
// within kRelL2ElementFactor·tol·‖want‖∞, NaN nowhere (infinities of the reference must match). Sets
// `error` to the relative L2 error seen.
std::string compare_rel_l2(const Vec& got, const Vec& want, double tol, double& error) {
  error = INFINITY;
  if (got.size() != want.size()) return fmt::format("{} elements, the reference has {}", got.size(), want.size());
  double diff2 = 0, want2 = 0, want_max = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) || std::isnan(want[i]))
      return fmt::format("[{}] = {} vs {}: NaN", i, got[i], want[i]);
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      if (got[i] != want[i]) return fmt::format("[{}] = {} vs {}", i, got[i], want[i]);
      continue;
    }
    diff2 += (got[i] - want[i]) * (got[i] - want[i]);
    want2 += want[i] * want[i];
    want_max = std::max(want_max, std::abs(want[i]));
  }
  error = want2 > 0 ? std::sqrt(diff2 / want2) : (diff2 > 0 ? INFINITY : 0.0);
  if (!(error <= tol))
    return fmt::format("relative L2 error {:.3g} > {} (‖want‖ = {:.6g}, ‖got − want‖ = {:.3g})", error, tol,
                       std::sqrt(want2), std::sqrt(diff2));
  const double bound = kRelL2ElementFactor * tol * want_max;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (std::abs(got[i] - want[i]) > bound)
      return fmt::format("relative L2 error {:.3g} within {}, but [{}] = {} vs {} is off by more than {}·{}·max|want| = {:.3g}",
                         error, tol, i, got[i], want[i], kRelL2ElementFactor, tol, bound);
  return "";
}

HostOuts read_all(const Outputs& outputs, bool as_bits) {
  HostOuts o;
  for (const auto& [name, t] : outputs) o[name] = read(t, as_bits);
  return o;
}

// "" when both runs produced the same outputs bit for bit.
std::string bitwise_diff(const HostOuts& a, const HostOuts& b) {
  for (const auto& [name, out] : a) {
    if (!b.count(name)) return "output " + name + " missing";
    if (out.bytes != b.at(name).bytes) return "output " + name + " differs";
  }
  return "";
}

}  // namespace

TEST_CASE("every op matches the double reference on every backend with a device", "[unit]") {
  const std::vector<OpCase> cases = all_cases();
  std::vector<BackendUnderTest> backends = backends_with_device();
  // TESSERA_PARITY_REQUIRE=<backend> (the cuda label's entry): test that backend (and the CPU, the
  // bitwise baseline) only, and exit 77 — CTest's "skipped" — where it has no device.
  if (const char* required = std::getenv("TESSERA_PARITY_REQUIRE"); required && *required) {
    std::erase_if(backends, [&](const BackendUnderTest& b) { return b.name != "cpu" && b.name != required; });
    if (backends.size() < 2) {
      fmt::print("backend {} has no device here: skipped\n", required);
      std::exit(77);
    }
  }
  const bool restricted = std::getenv("TESSERA_PARITY_REQUIRE") != nullptr;
  for (const PluginInfo& p : available_plugins("backend"))  // CMake builds the sim plugin for this test
    if (p.name == "sim" && !restricted)
      CHECK(std::any_of(backends.begin(), backends.end(), [](const BackendUnderTest& b) { return b.name == "sim"; }));
  std::map<std::string, HostOuts> cpu_results;  // by case id without the backend

  for (const BackendUnderTest& be : backends) {
    Backend& backend = backend_of(be.device);
    std::map<std::string, std::pair<int, std::set<std::string>>> ran;  // op → (runs, dtypes)
    std::set<std::string> claimed, built, disabled;                    // "op/dtype"
    std::map<DType, std::pair<double, std::string>> worst_l2;          // the largest relative L2 error per dtype
    for (const OpCase& c : cases) {
      for (DType t : kAllDTypes) {
        const std::vector<std::string> needs = c.needs.empty() ? std::vector<std::string>{c.op} : c.needs;
        std::vector<DType> dtypes = c.also_claims;
        dtypes.push_back(t);
        if (!std::all_of(needs.begin(), needs.end(), [&](const std::string& op) {
              return std::all_of(dtypes.begin(), dtypes.end(), [&](DType dt) { return backend.supports(op, dt); });
            }))
          continue;
        const std::string op_dtype = fmt::format("{}/{}", c.op, dtype_name(t));
        claimed.insert(op_dtype);
        if (std::find(c.dtypes.begin(), c.dtypes.end(), t) == c.dtypes.end()) continue;  // another row may build it
        built.insert(op_dtype);
        const std::string key = fmt::format("{} [{}] {}", c.op, c.shape, dtype_name(t));
        if (!c.disabled.empty()) {
          disabled.insert(key + ": " + c.disabled);
          continue;
        }
        INFO(key << " on " << be.name);
        HostOuts first, second;
        try {
          first = read_all(c.run(be.device, t), c.bits);
          second = read_all(c.run(be.device, t), c.bits);
        } catch (const std::exception& e) {
          FAIL_CHECK("threw: " << e.what());
          continue;
        }
        ++ran[c.op].first;
        ran[c.op].second.insert(dtype_name(t));
        if (const std::string d = bitwise_diff(first, second); !d.empty()) FAIL_CHECK("not deterministic: " << d);
        if (c.reference) {
          const Expected want = c.reference(t);
          for (const auto& [name, values] : want) {
            if (!first.count(name)) {
              FAIL_CHECK("no output " << name);
              continue;
            }
            const HostOut& got = first.at(name);
            const Tol tol = c.tol_for.count(name) ? c.tol_for.at(name) : c.tol;
            const bool exact = tol.abs == 0 && tol.rel == 0;
            std::string m;
            if (is16(got.dtype) && !exact && !c.bits) {
              double error = 0;
              m = compare_rel_l2(got.values, values, rel_l2_tolerance(got.dtype), error);
              auto& w = worst_l2[got.dtype];
              if (error >= w.first) w = {error, key + " " + name};
            } else {
              m = compare(got.values, values, tol);
            }
            if (!m.empty()) FAIL_CHECK(name << " (" << dtype_name(got.dtype) << "): " << m);
          }
          if (want.size() != first.size()) FAIL_CHECK("outputs without a reference value");
        }
        if (c.property)
          if (const std::string m = c.property(first, t); !m.empty()) FAIL_CHECK(m);
        if (be.name == "cpu") {
          cpu_results[key] = first;
        } else if ((kRunsCpuKernels.count(be.name) || c.exact_everywhere) && cpu_results.count(key)) {
          if (const std::string d = bitwise_diff(first, cpu_results.at(key)); !d.empty())
            FAIL_CHECK("not bit-identical to the CPU: " << d);
        }
      }
    }
    std::string line;
    int total = 0;
    for (const auto& [op, r] : ran) {
      std::string dts;
      for (const std::string& d : r.second) dts += (dts.empty() ? "" : ",") + d;
      line += fmt::format("{}{}×{} [{}]", line.empty() ? "" : ", ", op, r.first, dts);
      total += r.first;
    }
    fmt::print("backend {}: {} cases ran: {}\n", be.name, total, line);
    for (const auto& [t, w] : worst_l2)
      fmt::print("backend {}: largest relative L2 error in {} (tolerance {}): {:.3g}, {}\n", be.name, dtype_name(t),
                 rel_l2_tolerance(t), w.first, w.second);
    for (const std::string& u : claimed)
      if (!built.count(u)) fmt::print("backend {}: claims {} but no case builds that dtype\n", be.name, u);
    for (const std::string& d : disabled) fmt::print("backend {}: disabled: {}\n", be.name, d);
  }
}
