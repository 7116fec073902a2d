// Every op's forward and backward against PyTorch (reference_ops.py) on random data and odd
// shapes. Tolerance: ‖ours − ref‖/‖ref‖ < 1e-5, with the reference computed in float64.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "reference_data.hpp"
#include "tessera/ops.hpp"

using namespace tessera;
using tessera::test::RefCase;
using tessera::test::reference_cases;
using tessera::test::rel_err;

namespace {

constexpr double kTol = 1e-5;

// Checks one output and remembers the worst error per (op, output) for the summary line.
struct Checker {
  explicit Checker(std::string name) : op(std::move(name)) {}
  std::string op;
  std::map<std::string, double> worst;
  void operator()(const RefCase& c, const std::string& what, const Tensor& ours) {
    const double e = rel_err(ours, c.load(what));
    worst[what] = std::max(worst[what], e);
    INFO(op << " [" << c.name << "] " << what << ": rel err " << e);
    CHECK(e < kTol);
  }
  ~Checker() {
    std::string line = "max rel err " + op + ":";
    for (auto& [k, v] : worst) line += fmt::format(" {}={:.2e}", k, v);
    std::printf("%s\n", line.c_str());
  }
};

}  // namespace

TEST_CASE("matmul matches torch", "[unit][reference]") {
  Checker check{"matmul"};
  for (const auto& c : reference_cases("matmul")) {
    Tensor a = c.load("a"), b = c.load("b"), out = c.load("out0");
    ops::matmul(a, c.params["trans_a"], b, c.params["trans_b"], out, c.params["alpha"], c.params["beta"]);
    check(c, "out", out);
  }
}

TEST_CASE("linear forward and backward match torch", "[unit][reference]") {
  Checker check{"linear"};
  for (const auto& c : reference_cases("linear")) {
    const bool has_bias = c.params["bias"];
    Tensor x = c.load("x"), w = c.load("w"), dy = c.load("dy");
    Tensor b = has_bias ? c.load("b") : Tensor();
    Tensor y = Tensor::full(dy.shape(), 123.0f);  // overwritten, whatever it held
    ops::linear_forward(x, w, has_bias ? &b : nullptr, y);
    check(c, "y", y);
    Tensor dx = Tensor::full(x.shape(), 123.0f), dw = c.load("dw0");
    Tensor db = has_bias ? c.load("db0") : Tensor();
    ops::linear_backward(dy, x, w, &dx, &dw, has_bias ? &db : nullptr);
    check(c, "dx", dx);
    check(c, "dw", dw);  // accumulated onto dw0
    if (has_bias) check(c, "db", db);
    // dx may be skipped (first layer): dw still accumulates.
    Tensor dw2 = c.load("dw0");
    ops::linear_backward(dy, x, w, nullptr, &dw2, nullptr);
    check(c, "dw", dw2);
  }
}

TEST_CASE("layer_norm forward and backward match torch", "[unit][reference]") {
  Checker check{"layer_norm"};
  for (const auto& c : reference_cases("layer_norm")) {
    Tensor x = c.load("x"), w = c.load("w"), b = c.load("b"), dy = c.load("dy");
    const std::int64_t N = x.size(0);
    Tensor y = Tensor::empty(x.shape()), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
    ops::layer_norm_forward(x, w, b, c.params["eps"], y, mean, rstd);
    check(c, "y", y);
    check(c, "mean", mean);
    check(c, "rstd", rstd);
    Tensor dx = Tensor::full(x.shape(), 123.0f), dw = c.load("dw0"), db = c.load("db0");
    ops::layer_norm_backward(dy, x, w, mean, rstd, dx, dw, db);
    check(c, "dx", dx);
    check(c, "dw", dw);
    check(c, "db", db);
  }
}

namespace {
// An elementwise activation's forward and backward (also in place, as a module saving memory calls
// it) against the reference cases of `op`; with `from_output` backward reads the forward's output y
// (tanh, the sigmoid: what the pooler and the shared expert's gate save), else x.
void check_activation(const std::string& op, void (*forward)(const Tensor&, Tensor&),
                      void (*backward)(const Tensor&, const Tensor&, Tensor&), bool from_output = false) {
  Checker check{op};
  for (const auto& c : reference_cases(op)) {
    Tensor x = c.load("x"), dy = c.load("dy");
    Tensor y = Tensor::full(x.shape(), 123.0f), dx = Tensor::full(x.shape(), 123.0f);
    forward(x, y);
    check(c, "y", y);
    const Tensor& at = from_output ? y : x;
    backward(dy, at, dx);
    check(c, "dx", dx);
    backward(dy, at, dy);
    check(c, "dx", dy);
  }
}
}  // namespace

TEST_CASE("gelu (tanh) forward and backward match torch", "[unit][reference]") {
  check_activation("gelu", [](const Tensor& x, Tensor& y) { ops::gelu_forward(x, y); },
                   [](const Tensor& dy, const Tensor& x, Tensor& dx) { ops::gelu_backward(dy, x, dx); });
}

TEST_CASE("squared ReLU forward and backward match torch", "[unit][reference]") {
  check_activation("squared_relu", ops::squared_relu_forward, ops::squared_relu_backward);
}

TEST_CASE("gelu (exact, erf) forward and backward match torch", "[unit][reference]") {
  Checker check{"gelu_erf"};
  const auto cases = reference_cases("gelu_erf");
  REQUIRE(cases.size() == 4);
  for (const auto& c : cases) {
    Tensor x = c.load("x"), dy = c.load("dy");
    Tensor y = Tensor::empty(x.shape()), dx = Tensor::empty(x.shape());
    ops::gelu_forward(x, y, ops::GeluForm::erf);
    check(c, "y", y);
    ops::gelu_backward(dy, x, dx, ops::GeluForm::erf);
    check(c, "dx", dx);
    ops::gelu_backward(dy, x, dy, ops::GeluForm::erf);  // in place
    check(c, "dx", dy);
  }
}

TEST_CASE("tanh and sigmoid forward and backward (from the output) match torch", "[unit][reference]") {
  check_activation("tanh", ops::tanh_forward, ops::tanh_backward, /*from_output=*/true);
  check_activation("sigmoid", ops::sigmoid_forward, ops::sigmoid_backward, /*from_output=*/true);
}

TEST_CASE("rms_norm forward and backward match torch", "[unit][reference]") {
  Checker check{"rms_norm"};
  for (const auto& c : reference_cases("rms_norm")) {
    Tensor x = c.load("x"), w = c.load("w"), dy = c.load("dy");
    const std::int64_t N = x.size(0);
    Tensor y = Tensor::full(x.shape(), 123.0f), rstd = Tensor::empty({N});
    ops::rms_norm_forward(x, w, c.params["eps"], y, rstd);
    check(c, "y", y);
    check(c, "rstd", rstd);
    Tensor dx = Tensor::full(x.shape(), 123.0f), dw = c.load("dw0");
    ops::rms_norm_backward(dy, x, w, rstd, dx, dw);
    check(c, "dx", dx);
    check(c, "dw", dw);  // accumulated onto dw0
  }
}

TEST_CASE("swiglu and the other gated linear units (quick GeGLU, clamps, linear offset) match torch", "[unit][reference]") {
  Checker check{"swiglu"};
  for (const auto& c : reference_cases("swiglu")) {
    Tensor x = c.load("x"), dy = c.load("dy");
    Tensor y = Tensor::full(dy.shape(), 123.0f), dx = Tensor::full(x.shape(), 123.0f);
    GatedLinearUnit g;  // SwiGLU unless the case gives another unit (clamp 0: none)
    g.alpha = c.params.value("alpha", 1.0f);
    if (c.params.value("clamp", 0.0f) > 0.0f) g.clamp = c.params["clamp"];
    g.linear_offset = c.params.value("offset", 0.0f);
    ops::swiglu_forward(x, y, g);
    check(c, "y", y);
    ops::swiglu_backward(dy, x, dx, g);
    check(c, "dx", dx);
  }
}

TEST_CASE("rope forward and backward match torch (Megatron-Core's apply_rotary_pos_emb, apply_scaling and position "
          "interpolation)",
          "[unit][reference]") {
  Checker check{"rope"};
  for (const auto& c : reference_cases("rope")) {
    const auto& p = c.params;
    ops::RopeShape s{p["B"],      p["T"],     p["H"],           p["D"], p["width"], p["dim"], p["base"], p["interleaved"],
                     p["offset"], p.value("scaling", 0.0), p.value("interpolation", 1.0)};
    Tensor y = c.load("x");
    ops::rope_forward(s, y);  // in place; columns past H·D untouched
    check(c, "y", y);
    Tensor dx = c.load("dy");
    ops::rope_backward(s, dx);
    check(c, "dx", dx);
  }
}

namespace {

// u8 key mask from the reference's i32 one (undefined when the case has none).
Tensor key_mask_of(const RefCase& c) {
  if (!c.has("key_mask")) return Tensor();
  Tensor m32 = c.load("key_mask");
  Tensor m = Tensor::empty(m32.shape(), DType::u8);
  for (std::int64_t i = 0; i < m.numel(); ++i) m.data<std::uint8_t>()[i] = m32.data<std::int32_t>()[i] != 0;
  return m;
}

// lse is −∞ exactly where a row attends no key; elsewhere it is compared as a number.
bool same_infinities_then_zero(Tensor& ours, Tensor& ref) {
  bool same = true;
  float* o = ours.data<float>();
  float* r = ref.data<float>();
  for (std::int64_t i = 0; i < ours.numel(); ++i) {
    if (std::isinf(r[i])) {
      same &= std::isinf(o[i]) && o[i] < 0 && r[i] < 0;
      o[i] = r[i] = 0.0f;
    }
  }
  return same;
}

}  // namespace

TEST_CASE("attention (causal, padding-masked, documents, sliding windows, sinks, cross, placed queries; MHA, GQA, MQA) forward and backward match torch",
          "[unit][reference]") {
  Checker check{"attention"};
  for (const auto& c : reference_cases("attention")) {
    const auto& p = c.params;
    ops::AttentionShape s{p["B"], p["Tq"], p["Tk"], p["Hq"], p["Hkv"], p["D"], p["causal"]};
    s.window_left = p.value("window_left", -1);
    Tensor q = c.load("q"), kv = c.load("kv"), dout = c.load("dout");
    const ops::AttentionMask mask(key_mask_of(c), c.has("first_key") ? c.load("first_key") : Tensor(),
                                  c.has("sink") ? c.load("sink") : Tensor(),
                                  c.has("query_position") ? c.load("query_position") : Tensor());
    Tensor out = Tensor::full(q.shape(), 123.0f), lse = Tensor::full({s.B, s.Hq, s.Tq}, 123.0f);
    ops::attention_forward(s, q, kv, mask, out, lse);
    check(c, "out", out);
    Tensor lse_ours = lse.clone(), lse_ref = c.load("lse");
    INFO(c.name);
    CHECK(same_infinities_then_zero(lse_ours, lse_ref));
    const double e = rel_err(lse_ours, lse_ref);
    check.worst["lse"] = std::max(check.worst["lse"], e);
    CHECK(e < kTol);
    Tensor dq = Tensor::full(q.shape(), 123.0f), dkv = Tensor::full(kv.shape(), 123.0f);
    ops::attention_backward(s, dout, q, kv, mask, out, lse, dq, dkv);
    check(c, "dq", dq);
    check(c, "dkv", dkv);
    if (mask.sink.defined()) {  // added into what the gradient holds (here 1 per head)
      Tensor dsink = Tensor::full({s.Hq}, 1.0f);
      ops::attention_sink_backward(s, dout, out, lse, mask.sink, dsink);
      ops::axpy(-1.0f, Tensor::full({s.Hq}, 1.0f), dsink);
      check(c, "dsink", dsink);
    }
    // Run twice: bitwise the same (the order of every sum is fixed).
    Tensor out2 = Tensor::empty(q.shape()), lse2 = Tensor::empty(lse.shape());
    Tensor dq2 = Tensor::empty(q.shape()), dkv2 = Tensor::empty(kv.shape());
    ops::attention_forward(s, q, kv, mask, out2, lse2);
    ops::attention_backward(s, dout, q, kv, mask, out2, lse2, dq2, dkv2);
    CHECK(std::memcmp(out.data<float>(), out2.data<float>(), out.nbytes()) == 0);
    CHECK(std::memcmp(dq.data<float>(), dq2.data<float>(), dq.nbytes()) == 0);
    CHECK(std::memcmp(dkv.data<float>(), dkv2.data<float>(), dkv.nbytes()) == 0);
  }
}

TEST_CASE("embedding forward and backward match torch", "[unit][reference]") {
  Checker check{"embedding"};
  for (const auto& c : reference_cases("embedding")) {
    const bool acc = c.params["accumulate"];
    Tensor ids = c.load("ids"), table = c.load("table");
    Tensor out = acc ? c.load("out0") : Tensor::full(c.load("out0").shape(), 123.0f);
    ops::embedding_forward(ids, table, out, acc);
    check(c, "out", out);
    Tensor dtable = c.load("dtable0");
    ops::embedding_backward(ids, c.load("dout"), dtable);
    check(c, "dtable", dtable);
  }
}

TEST_CASE("softmax_cross_entropy losses and gradient match torch", "[unit][reference]") {
  Checker check{"cross_entropy"};
  for (const auto& c : reference_cases("cross_entropy")) {
    const float gs = c.params["grad_scale"];
    Tensor targets = c.load("targets");
    Tensor mask = c.params["masked"] ? c.load("mask") : Tensor();
    Tensor losses = Tensor::empty({targets.numel()});
    // Loss only: logits untouched.
    Tensor logits = c.load("logits");
    ops::softmax_cross_entropy(logits, targets, mask, losses, false, gs);
    check(c, "losses", losses);
    CHECK(rel_err(logits, c.load("logits")) == 0.0);
    // With the gradient, in place.
    losses.fill_(123.0f);
    ops::softmax_cross_entropy(logits, targets, mask, losses, true, gs);
    check(c, "losses", losses);
    check(c, "grad", logits);
  }
}

TEST_CASE("softmax matches torch", "[unit][reference]") {
  Checker check{"softmax"};
  for (const auto& c : reference_cases("softmax")) {
    Tensor x = c.load("x");
    Tensor out = Tensor::empty(x.shape());
    ops::softmax(x, out);
    check(c, "out", out);
    ops::softmax(x, x);  // in place
    check(c, "out", x);
  }
}

TEST_CASE("elementwise ops and reductions match torch", "[unit][reference]") {
  Checker check{"elementwise"};
  for (const auto& c : reference_cases("elementwise")) {
    const float alpha = c.params["alpha"], s = c.params["scale"];
    Tensor a = c.load("a"), b = c.load("b");
    Tensor out = Tensor::empty(a.shape());
    ops::add(a, b, out);
    check(c, "add", out);
    ops::copy(b, out);
    ops::axpy(alpha, a, out);
    check(c, "axpy", out);
    ops::copy(a, out);
    ops::scale(out, s);
    check(c, "scale", out);
    const auto ref = [&](const char* k) { return c.load(k).item(0); };
    // Double accumulation: far below float's 1e-7 even for 1e5 terms.
    CHECK(std::abs(ops::sum(a) - ref("sum")) <= 1e-6 * (1.0 + std::abs(ref("sum"))));
    CHECK(std::abs(ops::sum_squares(a) - ref("sum_squares")) <= 1e-6 * ref("sum_squares"));
    ops::add(a, b, a);  // aliasing out = a
    check(c, "add", a);
  }
}

TEST_CASE("adam_step matches torch.optim.Adam/AdamW over 10 steps", "[unit][reference]") {
  Checker check{"adam"};
  for (const auto& c : reference_cases("adam")) {
    const auto& p = c.params;
    Tensor param = c.load("param0"), grads = c.load("grads");
    Tensor m = Tensor::zeros(param.shape()), v = Tensor::zeros(param.shape());
    ops::AdamParams ap;
    ap.lr = p["lr"];
    ap.beta1 = p["beta1"];
    ap.beta2 = p["beta2"];
    ap.eps = p["eps"];
    ap.weight_decay = p["weight_decay"];
    ap.grad_scale = p["grad_scale"];
    ap.decoupled = p["decoupled"];
    const std::int64_t steps = p["steps"];
    for (std::int64_t k = 0; k < steps; ++k) {
      ap.step = k + 1;
      Tensor g = grads.rows(k, k + 1).reshape(param.shape());
      ops::adam_step(param, g, m, v, ap);
    }
    check(c, "param", param);
    check(c, "m", m);
    check(c, "v", v);
    // The param check alone is dominated by the unchanged part of the parameter; check the
    // update itself too. Its float rounding is ~1 ulp of the param per step, so relative to an
    // update of ~10·lr the honest bound is looser (1e-4 relative at lr = 1e-3).
    Tensor p0 = c.load("param0"), ours_delta = param.clone(), ref_delta = c.load("param");
    ops::axpy(-1.0f, p0, ours_delta);
    ops::axpy(-1.0f, p0, ref_delta);
    const double e = rel_err(ours_delta, ref_delta);
    check.worst["update"] = std::max(check.worst["update"], e);
    INFO("adam [" << c.name << "] update: rel err " << e);
    CHECK(e < 1e-4);
  }
}
