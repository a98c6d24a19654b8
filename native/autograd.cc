// Autograd: gradient flags, backward, torch.autograd.grad, grad mode.
#include "common.h"

namespace t3d {

void initAutograd(Napi::Env env, Napi::Object exports) {
  defineOp(env, exports, "setRequiresGrad", [](Args& a) { a.t(0).requires_grad_(a.b(1)); return a.undef(); });
  defineOp(env, exports, "requiresGrad", [](Args& a) { return a.boolean(a.t(0).requires_grad()); });
  defineOp(env, exports, "isLeaf", [](Args& a) { return a.boolean(a.t(0).is_leaf()); });
  defineOp(env, exports, "detach", [](Args& a) { return a.ret(a.t(0).detach()); });
  // A fresh handle to the accumulated gradient, or undefined.
  defineOp(env, exports, "grad", [](Args& a) {
    const at::Tensor& g = a.t(0).grad();
    return g.defined() ? a.ret(g) : a.undef();
  });
  // (t, grad?) — undefined resets the gradient (set_to_none semantics)
  defineOp(env, exports, "setGrad", [](Args& a) {
    at::Tensor& t = a.t(0);
    if (a.has(1)) t.mutable_grad() = a.t(1);
    else t.mutable_grad().reset();
    return a.undef();
  });
  // (roots[], grads?[], retainGraph)
  defineOp(env, exports, "backward", [](Args& a) {
    std::vector<at::Tensor> roots = a.tl(0);
    std::vector<at::Tensor> grads = a.has(1) ? a.tl(1) : std::vector<at::Tensor>{};
    torch::autograd::backward(roots, grads, a.b(2) ? c10::optional<bool>(true) : c10::nullopt, false);
    return a.undef();
  });
  // (outputs[], inputs[], gradOutputs?[], retainGraph, createGraph, allowUnused) → grads (undefined where unused)
  defineOp(env, exports, "autogradGrad", [](Args& a) {
    std::vector<at::Tensor> outs = a.tl(0), ins = a.tl(1);
    std::vector<at::Tensor> gouts = a.has(2) ? a.tl(2) : std::vector<at::Tensor>{};
    auto grads = torch::autograd::grad(outs, ins, gouts, a.b(3) ? c10::optional<bool>(true) : c10::nullopt, a.b(4), a.b(5));
    Napi::Array out = Napi::Array::New(a.env(), grads.size());
    for (uint32_t k = 0; k < grads.size(); ++k)
      out.Set(k, grads[k].defined() ? Napi::Value(Napi::Number::New(a.env(), registerTensor(a.env(), grads[k]))) : a.undef());
    return Napi::Value(out);
  });
  // returns the previous mode so JS can restore it in `finally`
  defineOp(env, exports, "setGradEnabled", [](Args& a) {
    const bool prev = c10::GradMode::is_enabled();
    c10::GradMode::set_enabled(a.b(0));
    return a.boolean(prev);
  });
  defineOp(env, exports, "isGradEnabled", [](Args& a) { return a.boolean(c10::GradMode::is_enabled()); });
}

}  // namespace t3d
