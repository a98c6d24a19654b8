// Element-wise arithmetic, comparisons, reductions, linear algebra and in-place updates.
#include "common.h"

namespace t3d {

#define UNARY(name, expr) defineOp(env, exports, name, [](Args& a) { const at::Tensor& x = a.t(0); return a.ret(expr); })
// Binary ops come in a tensor-tensor form (`name`) and a tensor-scalar form (`name` + "S").
#define BINARY(name, fn)                                                                              \
  defineOp(env, exports, name, [](Args& a) { return a.ret(fn(a.t(0), a.t(1))); });                    \
  defineOp(env, exports, name "S", [](Args& a) { return a.ret(fn(a.t(0), a.sc(1))); })
#define INPLACE(name, stmt) defineOp(env, exports, name, [](Args& a) { at::Tensor& x = a.t(0); stmt; return a.undef(); })

// 'channels-last' (the 4-D or 5-D form by the tensor's rank) or 'contiguous'
static at::MemoryFormat memoryFormat(const at::Tensor& t, const std::string& name) {
  if (name == "contiguous") return at::MemoryFormat::Contiguous;
  if (name != "channels-last") throw ArgError("memory format must be 'channels-last' or 'contiguous', got '" + name + "'");
  if (t.dim() == 5) return at::MemoryFormat::ChannelsLast3d;
  if (t.dim() == 4) return at::MemoryFormat::ChannelsLast;
  throw ArgError("channels-last needs a 4-D or 5-D tensor, got " + std::to_string(t.dim()) + "-D");
}

void initMath(Napi::Env env, Napi::Object exports) {
  UNARY("neg", at::neg(x));
  UNARY("abs", at::abs(x));
  UNARY("exp", at::exp(x));
  UNARY("log", at::log(x));
  UNARY("log1p", at::log1p(x));
  UNARY("expm1", at::expm1(x));
  UNARY("sqrt", at::sqrt(x));
  UNARY("rsqrt", at::rsqrt(x));
  UNARY("reciprocal", at::reciprocal(x));
  UNARY("sin", at::sin(x));
  UNARY("cos", at::cos(x));
  UNARY("sign", at::sign(x));
  UNARY("erfinv", at::erfinv(x));
  UNARY("floor", at::floor(x));
  UNARY("ceil", at::ceil(x));
  UNARY("round", at::round(x));
  UNARY("sigmoid", at::sigmoid(x));
  UNARY("tanh", at::tanh(x));
  UNARY("relu", at::relu(x));
  UNARY("silu", at::silu(x));
  UNARY("logicalNot", at::logical_not(x));
  UNARY("isnan", at::isnan(x));
  UNARY("isfinite", at::isfinite(x));
  UNARY("clone", x.clone());
  UNARY("contiguous", x.contiguous());
  // (t, format): 'channels-last' = ChannelsLast3d for 5-D (ChannelsLast for 4-D) tensors, 'contiguous' = row-major
  defineOp(env, exports, "contiguousAs", [](Args& a) {
    const at::Tensor& t = a.t(0);
    const at::MemoryFormat format = memoryFormat(t, a.s(1));
    // A one-channel tensor is dense in both layouts, so contiguous() returns it as is; like PyTorch's
    // module.to(memory_format=...), restride it anyway, since a convolution's output follows its weight's layout.
    if (t.suggest_memory_format() != format) return a.ret(at::empty_like(t, t.options(), format).copy_(t));
    return a.ret(t.contiguous(format));
  });
  defineOp(env, exports, "isContiguousAs", [](Args& a) { return a.boolean(a.t(0).is_contiguous(memoryFormat(a.t(0), a.s(1)))); });
  defineOp(env, exports, "gelu", [](Args& a) { return a.ret(at::gelu(a.t(0), a.has(1) ? a.s(1) : "none")); });
  defineOp(env, exports, "leakyRelu", [](Args& a) { return a.ret(at::leaky_relu(a.t(0), a.sc(1))); });
  defineOp(env, exports, "softmax", [](Args& a) { return a.ret(at::softmax(a.t(0), a.i(1))); });
  defineOp(env, exports, "logSoftmax", [](Args& a) { return a.ret(at::log_softmax(a.t(0), a.i(1))); });

  // add/sub carry alpha: (a, b, alpha?)
  defineOp(env, exports, "add", [](Args& a) { return a.ret(at::add(a.t(0), a.t(1), a.has(2) ? a.sc(2) : at::Scalar(1))); });
  defineOp(env, exports, "addS", [](Args& a) { return a.ret(at::add(a.t(0), a.sc(1))); });
  defineOp(env, exports, "sub", [](Args& a) { return a.ret(at::sub(a.t(0), a.t(1), a.has(2) ? a.sc(2) : at::Scalar(1))); });
  defineOp(env, exports, "subS", [](Args& a) { return a.ret(at::sub(a.t(0), a.sc(1))); });
  defineOp(env, exports, "rsubS", [](Args& a) { return a.ret(at::rsub(a.t(0), a.sc(1))); });
  defineOp(env, exports, "rdivS", [](Args& a) { return a.ret(at::mul(at::reciprocal(a.t(0)), a.sc(1))); });
  BINARY("mul", at::mul);
  BINARY("div", at::div);
  BINARY("pow", at::pow);
  BINARY("remainder", at::remainder);
  BINARY("eq", at::eq);
  BINARY("ne", at::ne);
  BINARY("lt", at::lt);
  BINARY("le", at::le);
  BINARY("gt", at::gt);
  BINARY("ge", at::ge);
  defineOp(env, exports, "rpowS", [](Args& a) { return a.ret(at::pow(a.sc(1), a.t(0))); });
  defineOp(env, exports, "maximum", [](Args& a) { return a.ret(at::maximum(a.t(0), a.t(1))); });
  defineOp(env, exports, "minimum", [](Args& a) { return a.ret(at::minimum(a.t(0), a.t(1))); });
  defineOp(env, exports, "logicalAnd", [](Args& a) { return a.ret(at::logical_and(a.t(0), a.t(1))); });
  defineOp(env, exports, "logicalOr", [](Args& a) { return a.ret(at::logical_or(a.t(0), a.t(1))); });
  defineOp(env, exports, "where", [](Args& a) { return a.ret(at::where(a.t(0), a.t(1), a.t(2))); });
  // (x, min?, max?) with scalar bounds
  defineOp(env, exports, "clamp", [](Args& a) {
    c10::optional<at::Scalar> lo, hi;
    if (a.has(1)) lo = a.sc(1);
    if (a.has(2)) hi = a.sc(2);
    return a.ret(at::clamp(a.t(0), lo, hi));
  });
  defineOp(env, exports, "lerp", [](Args& a) { return a.ret(at::lerp(a.t(0), a.t(1), a.sc(2))); });

  // reductions: (x, dims?, keepdim?)
  defineOp(env, exports, "sum", [](Args& a) {
    return a.ret(a.has(1) ? at::sum(a.t(0), a.il(1), a.b(2)) : at::sum(a.t(0)));
  });
  defineOp(env, exports, "mean", [](Args& a) {
    return a.ret(a.has(1) ? at::mean(a.t(0), a.il(1), a.b(2)) : at::mean(a.t(0)));
  });
  defineOp(env, exports, "prod", [](Args& a) { return a.ret(a.has(1) ? at::prod(a.t(0), a.i(1), a.b(2)) : at::prod(a.t(0))); });
  defineOp(env, exports, "amax", [](Args& a) { return a.ret(at::amax(a.t(0), a.has(1) ? a.il(1) : std::vector<int64_t>{}, a.b(2))); });
  defineOp(env, exports, "amin", [](Args& a) { return a.ret(at::amin(a.t(0), a.has(1) ? a.il(1) : std::vector<int64_t>{}, a.b(2))); });
  // (x, dim, keepdim) → [values, indices]
  defineOp(env, exports, "maxDim", [](Args& a) { return a.ret(at::max(a.t(0), a.i(1), a.b(2))); });
  defineOp(env, exports, "minDim", [](Args& a) { return a.ret(at::min(a.t(0), a.i(1), a.b(2))); });
  defineOp(env, exports, "argmax", [](Args& a) { return a.ret(at::argmax(a.t(0), a.oi(1), a.b(2))); });
  defineOp(env, exports, "argmin", [](Args& a) { return a.ret(at::argmin(a.t(0), a.oi(1), a.b(2))); });
  defineOp(env, exports, "all", [](Args& a) { return a.ret(at::all(a.t(0))); });
  defineOp(env, exports, "any", [](Args& a) { return a.ret(at::any(a.t(0))); });
  // (x, dims, keepdim)
  defineOp(env, exports, "logsumexp", [](Args& a) { return a.ret(at::logsumexp(a.t(0), a.il(1), a.b(2))); });
  // (x, p, dims?, keepdim)
  defineOp(env, exports, "norm", [](Args& a) {
    const at::Scalar p = a.sc(1);
    return a.ret(a.has(2) ? at::norm(a.t(0), p, a.il(2), a.b(3)) : at::norm(a.t(0), p));
  });
  // (x, dims?, correction, keepdim)
  defineOp(env, exports, "var", [](Args& a) {
    return a.ret(at::var(a.t(0), a.oil(1) ? at::OptionalIntArrayRef(*a.oil(1)) : c10::nullopt, a.i(2), a.b(3)));
  });
  defineOp(env, exports, "std", [](Args& a) {
    return a.ret(at::std(a.t(0), a.oil(1) ? at::OptionalIntArrayRef(*a.oil(1)) : c10::nullopt, a.i(2), a.b(3)));
  });
  defineOp(env, exports, "cumsum", [](Args& a) { return a.ret(at::cumsum(a.t(0), a.i(1))); });
  // (x, k, dim, largest, sorted) → [values, indices]
  defineOp(env, exports, "topk", [](Args& a) { return a.ret(at::topk(a.t(0), a.i(1), a.i(2), a.b(3), a.b(4))); });
  // (x, dim, descending) → [values, indices]
  defineOp(env, exports, "sort", [](Args& a) { return a.ret(at::sort(a.t(0), a.i(1), a.b(2))); });

  defineOp(env, exports, "matmul", [](Args& a) { return a.ret(at::matmul(a.t(0), a.t(1))); });
  defineOp(env, exports, "bmm", [](Args& a) { return a.ret(at::bmm(a.t(0), a.t(1))); });
  defineOp(env, exports, "einsum", [](Args& a) { return a.ret(at::einsum(a.s(0), a.tl(1))); });

  // In-place updates (optimizers, initialisers, buffers). They bypass autograd on purpose.
  INPLACE("zero_", { at::NoGradGuard g; x.zero_(); });
  INPLACE("fill_", { at::NoGradGuard g; x.fill_(a.sc(1)); });
  INPLACE("copy_", { at::NoGradGuard g; x.copy_(a.t(1)); });
  INPLACE("mul_", { at::NoGradGuard g; x.mul_(a.sc(1)); });
  INPLACE("mulT_", { at::NoGradGuard g; x.mul_(a.t(1)); });
  INPLACE("div_", { at::NoGradGuard g; x.div_(a.sc(1)); });
  INPLACE("add_", { at::NoGradGuard g; x.add_(a.t(1), a.has(2) ? a.sc(2) : at::Scalar(1)); });
  INPLACE("addS_", { at::NoGradGuard g; x.add_(a.sc(1)); });
  INPLACE("addcmul_", { at::NoGradGuard g; x.addcmul_(a.t(1), a.t(2), a.sc(3)); });
  INPLACE("addcdiv_", { at::NoGradGuard g; x.addcdiv_(a.t(1), a.t(2), a.sc(3)); });
  INPLACE("lerp_", { at::NoGradGuard g; x.lerp_(a.t(1), a.sc(2)); });
  INPLACE("clampMin_", { at::NoGradGuard g; x.clamp_min_(a.sc(1)); });
  INPLACE("clampMax_", { at::NoGradGuard g; x.clamp_max_(a.sc(1)); });
  INPLACE("sqrt_", { at::NoGradGuard g; x.sqrt_(); });
  INPLACE("erfinv_", { at::NoGradGuard g; x.erfinv_(); });
  INPLACE("maximum_", { at::NoGradGuard g; at::maximum_out(x, x, a.t(1)); });
  // recorded by autograd, unlike the optimizer's in-place updates above
  INPLACE("relu_", at::relu_(x));
  INPLACE("addRecorded_", x.add_(a.t(1)));
}

}  // namespace t3d
