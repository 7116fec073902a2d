// The backend parity harness (as ggml's test-backend-ops): every op of ops.hpp × several shapes ×
// every dtype a backend claims for it (Backend::supports), on every backend that has a device here
// — the CPU and each backend plugin on the search path whose device_count() > 0 — against the plain
// double-precision references of backend_ops_reference.hpp.
//
// Each run starts from outputs poisoned with NaN (or a sentinel for integer dtypes), so an element a
// backend forgets to write fails; accumulating (+=) outputs start from known non-zero values. Each
// case runs twice on fresh tensors and must give bitwise-identical results; backends that run the
// CPU's kernels (sim) must equal the CPU bit for bit, and ops with no arithmetic to reorder (copies,
// gathers, dropout's hash) must match the CPU bit for bit on every backend.
//
// The table: an OpCase is (op, shape, builder, reference, tolerance). The builder makes its inputs
// on a device from host values fixed when the table is made, runs the op and returns its outputs by
// name; the reference computes the same names from the same host values in double. Adding an op or a
// shape is adding a row; a new backend plugin joins by being on the plugin path.
#include <algorithm>
#include <cmath>
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
#include "tessera/ops.hpp"
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

// Backends whose ops are the CPU's kernels: they must equal the CPU bit for bit on every case.
const std::set<std::string> kRunsCpuKernels = {"cpu", "sim"};

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

// A tensor of `dtype` on `device` holding `values` (16-bit float types: the values are bit patterns).
Tensor put(const Shape& shape, const Vec& values, Device device, DType dtype = DType::f32) {
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
      case DType::f16: static_cast<std::uint16_t*>(h.raw())[i] = static_cast<std::uint16_t>(v); break;
    }
  }
  return h.to(device);
}
Tensor put_ids(const std::vector<int>& ids, Device device) {
  return put({static_cast<I64>(ids.size())}, Vec(ids.begin(), ids.end()), device, DType::i32);
}
Tensor poisoned(const Shape& shape, Device device, DType dtype = DType::f32) {
  return put(shape, Vec(static_cast<std::size_t>(shape_numel(shape)), poison_value(dtype)), device, dtype);
}

// An output read back: its bytes (for bitwise checks) and its values as doubles.
struct HostOut {
  std::vector<unsigned char> bytes;
  Vec values;
};
HostOut read(const Tensor& t) {
  HostOut o;
  o.bytes.resize(t.nbytes());
  t.copy_to_host(o.bytes.data());
  o.values.resize(static_cast<std::size_t>(t.numel()));
  auto get = [&](auto zero, std::size_t i) {
    decltype(zero) v;
    std::memcpy(&v, o.bytes.data() + i * sizeof(v), sizeof(v));
    return static_cast<double>(v);
  };
  for (std::size_t i = 0; i < o.values.size(); ++i) {
    switch (t.dtype()) {
      case DType::f32: o.values[i] = get(float{}, i); break;
      case DType::f64: o.values[i] = get(double{}, i); break;
      case DType::i32: o.values[i] = get(std::int32_t{}, i); break;
      case DType::i64: o.values[i] = get(std::int64_t{}, i); break;
      case DType::u8: o.values[i] = get(std::uint8_t{}, i); break;
      case DType::bf16:
      case DType::f16: o.values[i] = get(std::uint16_t{}, i); break;
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

struct OpCase {
  OpCase(std::string op_name, std::string shape_desc) : op(std::move(op_name)), shape(std::move(shape_desc)) {}
  std::string op;     // the op of ops.hpp this row runs: the name Backend::supports is asked about
  std::string shape;  // what varies between the rows of one op
  std::vector<std::string> needs = {};  // where the row runs several ops: all of them (else `op`)
  std::vector<DType> dtypes = kF32;  // the dtypes this builder can make
  std::function<Outputs(Device, DType)> run;
  std::function<Expected(DType)> reference;  // null: only the property is checked
  Tol tol;
  std::map<std::string, Tol> tol_for = {};  // per output, where it differs from `tol`
  bool exact_everywhere = false;             // no arithmetic to reorder: every backend equals the CPU
  std::function<std::string(const HostOuts&)> property = nullptr;  // extra check; "" when it holds
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
        OpCase c{"matmul", fmt::format("M={} K={} N={} ta={} tb={} alpha={} beta={}{}", s.M, s.K, s.N, ta, tb, s.alpha,
                                       s.beta, s.flatten_a ? " a=[2,M/2,K]" : "")};
        c.run = [=](Device d, DType) {
          // beta = 0 must not read out (BLAS): it starts as NaN. Otherwise it starts from out0.
          Tensor out = s.beta == 0 ? poisoned({s.M, s.N}, d) : put({s.M, s.N}, out0, d);
          ops::matmul(put(a_shape, a, d), ta, put(b_shape, b, d), tb, out, s.alpha, s.beta);
          return Outputs{{"out", out}};
        };
        c.reference = [=](DType) {
          return Expected{{"out", ref::matmul(a, ta, b, tb, s.M, s.N, s.K, s.alpha, s.beta, out0)}};
        };
        c.tol = accumulation(s.K + 1);
        cases.push_back(c);
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
      c.run = [=](Device d, DType) {
        Tensor y = poisoned({s.N, s.out}, d), b = put({s.out}, bias, d);
        ops::linear_forward(put({s.N, s.in}, x, d), put({s.out, s.in}, w, d), with_bias ? &b : nullptr, y);
        return Outputs{{"y", y}};
      };
      c.reference = [=](DType) {
        Vec y = ref::matmul(x, false, w, true, s.N, s.out, s.in, 1, 0, {});
        if (with_bias)
          for (I64 i = 0; i < s.N * s.out; ++i) y[i] += bias[i % s.out];
        return Expected{{"y", y}};
      };
      c.tol = accumulation(s.in + 1);
      cases.push_back(c);
    }
    // dx overwritten (poisoned), dw and db accumulated (start from dw0, db0); each may be absent.
    for (auto [want_dx, want_db] : {std::pair{true, true}, {false, true}, {true, false}}) {
      OpCase c{"linear_backward", fmt::format("N={} in={} out={} dx={} db={}", s.N, s.in, s.out, want_dx, want_db)};
      c.run = [=](Device d, DType) {
        Tensor dx = poisoned({s.N, s.in}, d), dw = put({s.out, s.in}, dw0, d), db = put({s.out}, db0, d);
        ops::linear_backward(put({s.N, s.out}, dy, d), put({s.N, s.in}, x, d), put({s.out, s.in}, w, d),
                             want_dx ? &dx : nullptr, &dw, want_db ? &db : nullptr);
        Outputs o{{"dw", dw}};
        if (want_dx) o["dx"] = dx;
        if (want_db) o["db"] = db;
        return o;
      };
      c.reference = [=](DType) {
        Vec dw = ref::matmul(dy, true, x, false, s.out, s.in, s.N, 1, 1, dw0), db = db0;
        for (I64 i = 0; i < s.N * s.out; ++i) db[i % s.out] += dy[i];
        Expected e{{"dw", dw}};
        if (want_dx) e["dx"] = ref::matmul(dy, false, w, false, s.N, s.in, s.out, 1, 0, {});
        if (want_db) e["db"] = db;
        return e;
      };
      c.tol = accumulation(std::max(s.N, s.out) + 1);
      cases.push_back(c);
    }
  }
}

// ---- layer norm, gelu, dropout -------------------------------------------------------------------

void layer_norm_cases(std::vector<OpCase>& cases) {
  Rng rng(13);
  const double eps = 1e-5;
  for (auto [N, C] : {std::pair<I64, I64>{5, 13}, {1, 7}, {3, 97}, {kThreaded[0], kThreaded[1]}}) {
    const Vec x = rng.uniform(N * C, -2, 3), w = rng.uniform(C, 0.5, 1.5), b = rng.uniform(C);
    const Vec dy = rng.uniform(N * C), dw0 = rng.uniform(C), db0 = rng.uniform(C);
    OpCase f{"layer_norm_forward", fmt::format("N={} C={}", N, C)};
    f.run = [=](Device d, DType) {
      Tensor y = poisoned({N, C}, d), mean = poisoned({N}, d), rstd = poisoned({N}, d);
      ops::layer_norm_forward(put({N, C}, x, d), put({C}, w, d), put({C}, b, d), static_cast<float>(eps), y, mean,
                              rstd);
      return Outputs{{"y", y}, {"mean", mean}, {"rstd", rstd}};
    };
    f.reference = [=](DType) {
      ref::LayerNorm r = ref::layer_norm(x, w, b, eps, N, C);
      return Expected{{"y", r.y}, {"mean", r.mean}, {"rstd", r.rstd}};
    };
    // Mean and variance are sums of C terms; rstd ≈ 1 here.
    f.tol = accumulation(C);
    cases.push_back(f);

    // Backward takes the reference's saved statistics (as f32), so it is tested on its own.
    const ref::LayerNorm saved = ref::layer_norm(x, w, b, eps, N, C);
    const Vec mean = as_f32(saved.mean), rstd = as_f32(saved.rstd);
    OpCase g{"layer_norm_backward", fmt::format("N={} C={}", N, C)};
    g.run = [=](Device d, DType) {
      Tensor dx = poisoned({N, C}, d), dw = put({C}, dw0, d), db = put({C}, db0, d);
      ops::layer_norm_backward(put({N, C}, dy, d), put({N, C}, x, d), put({C}, w, d), put({N}, mean, d),
                               put({N}, rstd, d), dx, dw, db);
      return Outputs{{"dx", dx}, {"dw", dw}, {"db", db}};
    };
    g.reference = [=](DType) {
      Vec dx, dw = dw0, db = db0;
      ref::layer_norm_backward(dy, x, w, mean, rstd, N, C, dx, dw, db);
      return Expected{{"dx", dx}, {"dw", dw}, {"db", db}};
    };
    g.tol = accumulation(std::max(N, C));
    cases.push_back(g);
  }
}

void gelu_cases(std::vector<OpCase>& cases) {
  Rng rng(14);
  for (const Shape& shape : {Shape{37}, Shape{1}, Shape{5, 19}, kThreaded}) {
    const I64 n = shape_numel(shape);
    const Vec x = rng.uniform(n, -5, 5), dy = rng.uniform(n);
    OpCase f{"gelu_forward", shape_str(shape)};
    f.run = [=](Device d, DType) {
      Tensor y = poisoned(shape, d);
      ops::gelu_forward(put(shape, x, d), y);
      return Outputs{{"y", y}};
    };
    f.reference = [=](DType) {
      Vec y(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) y[i] = ref::gelu(x[i]);
      return Expected{{"y", y}};
    };
    // A vectorised f32 exp (≈ 1e-7 relative) and a handful of f32 operations per element.
    f.tol = {2e-6, 1e-5};
    cases.push_back(f);
    OpCase g{"gelu_backward", shape_str(shape)};
    g.run = [=](Device d, DType) {
      Tensor dx = poisoned(shape, d);
      ops::gelu_backward(put(shape, dy, d), put(shape, x, d), dx);
      return Outputs{{"dx", dx}};
    };
    g.reference = [=](DType) {
      Vec dx(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) dx[i] = dy[i] * ref::gelu_grad(x[i]);
      return Expected{{"dx", dx}};
    };
    g.tol = {2e-6, 1e-5};
    cases.push_back(g);
  }
}

// Dropout's mask is the backend's hash, so the reference is a property: every output is 0 or
// x/(1−p), backward drops exactly what forward dropped, about 1−p is kept, and a shard run with
// `offset` reproduces its slice of the whole. p = 0 must copy. The hash is part of the contract
// (checkpoints resume with the same masks), so every backend must equal the CPU bit for bit.
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
    const Vec x_tail = slice(x, tail_row * s.C, s.N * s.C);
    OpCase c{"dropout", fmt::format("[{},{}] p={} tail from row {}", s.N, s.C, s.p, tail_row)};
    c.needs = {"dropout_forward", "dropout_backward"};
    c.run = [=](Device d, DType) {
      Tensor y = poisoned({s.N, s.C}, d), dx = poisoned({s.N, s.C}, d), y_tail = poisoned({tail}, d);
      ops::dropout_forward(put({s.N, s.C}, x, d), s.p, s.seed, y);
      ops::dropout_backward(put({s.N, s.C}, dy, d), s.p, s.seed, dx);
      ops::dropout_forward(put({tail}, x_tail, d), s.p, s.seed, y_tail, tail_row * s.C);
      return Outputs{{"y", y}, {"dx", dx}, {"y_tail", y_tail}};
    };
    if (s.p == 0.0f)
      c.reference = [=](DType) { return Expected{{"y", x}, {"dx", dy}, {"y_tail", x_tail}}; };
    c.property = [=](const HostOuts& o) -> std::string {
      const Vec &y = o.at("y").values, &dx = o.at("dx").values, &yt = o.at("y_tail").values;
      const double keep_scale = 1.0 / (1.0 - s.p);
      I64 kept = 0;
      for (std::size_t i = 0; i < x.size(); ++i) {
        const bool dropped = y[i] == 0.0;
        kept += dropped ? 0 : 1;
        if (!dropped && std::abs(y[i] - x[i] * keep_scale) > 1e-6 * std::abs(x[i] * keep_scale))
          return fmt::format("y[{}] = {} is neither 0 nor x/(1-p) = {}", i, y[i], x[i] * keep_scale);
        if ((dx[i] == 0.0) != dropped)
          return fmt::format("element {}: forward {} it, backward {}", i, dropped ? "dropped" : "kept",
                             dx[i] == 0.0 ? "dropped" : "kept");
        if (!dropped && std::abs(dx[i] - dy[i] * keep_scale) > 1e-6 * std::abs(dy[i] * keep_scale))
          return fmt::format("dx[{}] = {} is not dy/(1-p) = {}", i, dx[i], dy[i] * keep_scale);
      }
      const double n = static_cast<double>(x.size()), expect = n * (1.0 - s.p);
      if (std::abs(static_cast<double>(kept) - expect) > 4 * std::sqrt(n * s.p * (1 - s.p)) + 1)  // 4σ
        return fmt::format("kept {} of {} elements with p = {}", kept, x.size(), s.p);
      const std::size_t first = static_cast<std::size_t>(tail_row * s.C);
      if (std::memcmp(o.at("y_tail").bytes.data(), o.at("y").bytes.data() + first * sizeof(float),
                      yt.size() * sizeof(float)) != 0)
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
      f.run = [=](Device d, DType) {
        Tensor out = acc ? put({s.N, s.C}, out0, d) : poisoned({s.N, s.C}, d);
        ops::embedding_forward(put_ids(ids, d), put({s.V, s.C}, table, d), out, acc);
        return Outputs{{"out", out}};
      };
      f.reference = [=](DType) {
        Vec out(static_cast<std::size_t>(s.N * s.C));
        for (I64 n = 0; n < s.N; ++n)
          for (I64 c = 0; c < s.C; ++c) out[n * s.C + c] = table[ids[n] * s.C + c] + (acc ? out0[n * s.C + c] : 0.0);
        return Expected{{"out", as_f32(out)}};  // a gather, or one f32 addition: exact after rounding
      };
      f.tol = kExact;
      f.exact_everywhere = true;
      cases.push_back(f);
    }
    OpCase b{"embedding_backward", shape};
    b.run = [=](Device d, DType) {
      Tensor dtable = put({s.V, s.C}, dtable0, d);
      ops::embedding_backward(put_ids(ids, d), put({s.N, s.C}, dout, d), dtable);
      return Outputs{{"dtable", dtable}};
    };
    b.reference = [=](DType) {
      Vec dt = dtable0;
      for (I64 n = 0; n < s.N; ++n)
        for (I64 c = 0; c < s.C; ++c) dt[ids[n] * s.C + c] += dout[n * s.C + c];
      return Expected{{"dtable", dt}};
    };
    b.tol = accumulation(s.N);  // up to N additions into one row
    cases.push_back(b);
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
    f.run = [=](Device d, DType) {
      Tensor out = poisoned({s.N, s.C}, d);
      ops::embedding_shard_forward(put_ids(ids, d), put({rows, s.C}, table, d), first, out);
      return Outputs{{"out", out}};
    };
    f.reference = [=](DType) {
      Vec out(static_cast<std::size_t>(s.N * s.C), 0.0);
      for (I64 n = 0; n < s.N; ++n)
        if (inside(ids[n]))
          for (I64 c = 0; c < s.C; ++c) out[n * s.C + c] = table[(ids[n] - first) * s.C + c];
      return Expected{{"out", out}};
    };
    f.tol = kExact;
    f.exact_everywhere = true;
    cases.push_back(f);
    OpCase b{"embedding_shard_backward", shape};
    b.run = [=](Device d, DType) {
      Tensor dtable = put({rows, s.C}, dtable0, d);
      ops::embedding_shard_backward(put_ids(ids, d), put({s.N, s.C}, dout, d), first, dtable);
      return Outputs{{"dtable", dtable}};
    };
    b.reference = [=](DType) {
      Vec dt = dtable0;
      for (I64 n = 0; n < s.N; ++n)
        if (inside(ids[n]))
          for (I64 c = 0; c < s.C; ++c) dt[(ids[n] - first) * s.C + c] += dout[n * s.C + c];
      return Expected{{"dtable", dt}};
    };
    b.tol = accumulation(3);
    cases.push_back(b);
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
    auto add_case = [&](std::string op, std::string what, std::function<Outputs(Device)> run, Vec want) {
      OpCase c{std::move(op), sh + what};
      c.run = [run](Device d, DType) { return run(d); };
      c.reference = [name = c.op == "add" ? "out" : (c.op == "scale" ? "x" : "y"), want](DType) {
        return Expected{{name, want}};
      };
      c.tol = kElementwise;
      cases.push_back(c);
    };
    Vec sum(a.size()), axpy(a.size()), scaled(a.size());
    for (std::size_t i = 0; i < a.size(); ++i)
      sum[i] = a[i] + b[i], axpy[i] = b[i] - 0.75 * a[i], scaled[i] = a[i] * -1.5;
    add_case("add", "", [=](Device d) {
      Tensor out = poisoned(shape, d);
      ops::add(put(shape, a, d), put(shape, b, d), out);
      return Outputs{{"out", out}};
    }, sum);
    add_case("add", " out aliases a", [=](Device d) {
      Tensor out = put(shape, a, d);
      ops::add(out, put(shape, b, d), out);
      return Outputs{{"out", out}};
    }, sum);
    add_case("axpy", " alpha=-0.75", [=](Device d) {
      Tensor y = put(shape, b, d);
      ops::axpy(-0.75f, put(shape, a, d), y);
      return Outputs{{"y", y}};
    }, axpy);
    add_case("scale", " s=-1.5", [=](Device d) {
      Tensor x = put(shape, a, d);
      ops::scale(x, -1.5f);
      return Outputs{{"x", x}};
    }, scaled);
    const I64 C = shape.back();
    const Vec bias = rng.uniform(C);
    Vec biased = a;
    for (I64 i = 0; i < n; ++i) biased[i] += bias[i % C];
    add_case("add_bias", fmt::format(" bias [{}]", C), [=](Device d) {
      Tensor y = put(shape, a, d);
      ops::add_bias(y, put({C}, bias, d));
      return Outputs{{"y", y}};
    }, biased);
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
    c.run = [=](Device d, DType t) {
      const Vec& v = data.at(t).at(shape_numel(shape));
      Tensor dst = poisoned(shape, d, t), from_host = poisoned(shape, d, t), to_host = poisoned(shape, Device::cpu(), t);
      ops::copy(put(shape, v, d, t), dst);
      ops::copy(put(shape, v, Device::cpu(), t), from_host);
      ops::copy(put(shape, v, d, t), to_host);
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
    c.run = [=](Device d, DType t) {
      Tensor dst = poisoned({k.dst_n}, d, t);  // outside the block it must stay poisoned
      ops::copy_2d(put({k.src_n}, data.at(t).at(k.src_n), d, t), k.src_off, k.src_stride, dst, k.dst_off, k.dst_stride,
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

// Reductions into f64 [1], accumulated in double: only the order of the additions may differ.
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
      auto add_case = [&](const char* op, std::function<void(Device, Tensor&)> run, double want) {
        OpCase c{op, sh};
        c.run = [=](Device d, DType) {
          Tensor out = acc ? put({1}, {start}, d, DType::f64) : poisoned({1}, d, DType::f64);
          run(d, out);
          return Outputs{{"out", out}};
        };
        c.reference = [=](DType) { return Expected{{"out", {want + (acc ? start : 0.0)}}}; };
        c.tol = {1e-12, 1e-12};
        cases.push_back(c);
      };
      double s = 0, ss = 0, ms = 0;
      for (I64 i = 0; i < n; ++i) s += x[i], ss += x[i] * x[i], ms += x[i] * mask[i];
      add_case("sum", [=](Device d, Tensor& out) { ops::sum(put(shape, x, d), out, acc); }, s);
      add_case("sum_squares", [=](Device d, Tensor& out) { ops::sum_squares(put(shape, x, d), out, acc); }, ss);
      add_case("masked_sum",
               [=](Device d, Tensor& out) { ops::masked_sum(put(shape, x, d), put(shape, mask, d), out, acc); }, ms);
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
    f.run = [=](Device d, DType) {
      Tensor out = poisoned({s.B, s.Tq, qc}, d), lse = poisoned({s.B, s.Hq, s.Tq}, d);
      ops::attention_forward(s, put({s.B, s.Tq, qc}, q, d), put({s.B, s.Tk, kvc}, kv, d), key_mask(d), out, lse);
      return Outputs{{"out", out}, {"lse", lse}};
    };
    f.reference = [=](DType) {
      Vec out, lse;
      ref::attention_forward(a, q, kv, out, lse);
      return Expected{{"out", out}, {"lse", lse}};
    };
    f.tol = accumulation(std::max(s.Tk, s.D));  // scores: D products; outputs: Tk products
    cases.push_back(f);

    // Backward takes the reference's output and lse (as f32), so it is tested on its own.
    Vec ref_out, ref_lse;
    ref::attention_forward(a, q, kv, ref_out, ref_lse);
    const Vec out = as_f32(ref_out), lse = as_f32(ref_lse);
    OpCase b{"attention_backward", shape};
    b.run = [=](Device d, DType) {
      Tensor dq = poisoned({s.B, s.Tq, qc}, d), dkv = poisoned({s.B, s.Tk, kvc}, d);
      ops::attention_backward(s, put({s.B, s.Tq, qc}, dout, d), put({s.B, s.Tq, qc}, q, d),
                              put({s.B, s.Tk, kvc}, kv, d), key_mask(d), put({s.B, s.Tq, qc}, out, d),
                              put({s.B, s.Hq, s.Tq}, lse, d), dq, dkv);
      return Outputs{{"dq", dq}, {"dkv", dkv}};
    };
    b.reference = [=](DType) {
      Vec dq, dkv;
      ref::attention_backward(a, dout, q, kv, dq, dkv);
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
  gelu_cases(cases);
  dropout_cases(cases);
  embedding_cases(cases);
  cross_entropy_cases(cases);
  elementwise_cases(cases);
  copy_cases(cases);
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

HostOuts read_all(const Outputs& outputs) {
  HostOuts o;
  for (const auto& [name, t] : outputs) o[name] = read(t);
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
  const std::vector<BackendUnderTest> backends = backends_with_device();
  for (const PluginInfo& p : available_plugins("backend"))  // CMake builds the sim plugin for this test
    if (p.name == "sim")
      CHECK(std::any_of(backends.begin(), backends.end(), [](const BackendUnderTest& b) { return b.name == "sim"; }));
  std::map<std::string, HostOuts> cpu_results;  // by case id without the backend

  for (const BackendUnderTest& be : backends) {
    Backend& backend = backend_of(be.device);
    std::map<std::string, std::pair<int, std::set<std::string>>> ran;  // op → (runs, dtypes)
    std::set<std::string> unbuilt, disabled;
    for (const OpCase& c : cases) {
      for (DType t : kAllDTypes) {
        const std::vector<std::string> needs = c.needs.empty() ? std::vector<std::string>{c.op} : c.needs;
        if (!std::all_of(needs.begin(), needs.end(), [&](const std::string& op) { return backend.supports(op, t); }))
          continue;
        if (std::find(c.dtypes.begin(), c.dtypes.end(), t) == c.dtypes.end()) {
          unbuilt.insert(fmt::format("{}/{}", c.op, dtype_name(t)));  // claimed, but no row builds it yet
          continue;
        }
        const std::string key = fmt::format("{} [{}] {}", c.op, c.shape, dtype_name(t));
        if (!c.disabled.empty()) {
          disabled.insert(key + ": " + c.disabled);
          continue;
        }
        INFO(key << " on " << be.name);
        HostOuts first, second;
        try {
          first = read_all(c.run(be.device, t));
          second = read_all(c.run(be.device, t));
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
            const Tol tol = c.tol_for.count(name) ? c.tol_for.at(name) : c.tol;
            if (const std::string m = compare(first.at(name).values, values, tol); !m.empty())
              FAIL_CHECK(name << ": " << m);
          }
          if (want.size() != first.size()) FAIL_CHECK("outputs without a reference value");
        }
        if (c.property)
          if (const std::string m = c.property(first); !m.empty()) FAIL_CHECK(m);
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
    for (const std::string& u : unbuilt) fmt::print("backend {}: claims {} but no case builds that dtype\n", be.name, u);
    for (const std::string& d : disabled) fmt::print("backend {}: disabled: {}\n", be.name, d);
  }
}
