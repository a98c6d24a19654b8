// Multi-tensor optimizer steps: one addon call updates a whole parameter group through libtorch's _foreach ops, so
// CUDA runs a few multi-tensor kernels per step instead of several launches per parameter (PyTorch's foreach
// AdamW); on the CPU the same ops run per tensor and the results are those of the single-tensor updates.
#include "common.h"

namespace t3d {

namespace {
void sameLength(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, const char* what) {
  if (a.size() != b.size()) throw ArgError(std::string(what) + ": " + std::to_string(a.size()) + " parameters but " + std::to_string(b.size()) + " other tensors");
}
}  // namespace

void initOptim(Napi::Env env, Napi::Object exports) {
  // (params, grads, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, decoupled, stepSize, bc2Sqrt): Adam(W) in
  // PyTorch's order; stepSize = -lr / (1 - beta1^t) and bc2Sqrt = sqrt(1 - beta2^t) come from the caller
  defineOp(env, exports, "adamStep", [](Args& a) {
    std::vector<at::Tensor> p = a.tl(0), g = a.tl(1), m = a.tl(2), v = a.tl(3);
    sameLength(p, g, "adamStep");
    sameLength(p, m, "adamStep");
    sameLength(p, v, "adamStep");
    const double lr = a.d(4), beta1 = a.d(5), beta2 = a.d(6), eps = a.d(7), wd = a.d(8), stepSize = a.d(10), bc2Sqrt = a.d(11);
    at::NoGradGuard noGrad;
    if (wd != 0) {
      if (a.b(9)) at::_foreach_mul_(p, 1 - lr * wd);
      else g = at::_foreach_add(g, p, wd);
    }
#if TORCH_VERSION_MAJOR >= 2
    at::_foreach_lerp_(m, g, 1 - beta1);
#else
    for (size_t i = 0; i < m.size(); ++i) m[i].lerp_(g[i], 1 - beta1);  // libtorch 1.x has no _foreach_lerp_
#endif
    at::_foreach_mul_(v, beta2);
    at::_foreach_addcmul_(v, g, g, 1 - beta2);
    std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
    at::_foreach_div_(denom, bc2Sqrt);
    at::_foreach_add_(denom, eps);
    at::_foreach_addcdiv_(p, m, denom, stepSize);
    return a.undef();
  });
  // (grads, maxNorm, normType) → the total norm before clipping; scales the gradients in place when it exceeds maxNorm
  defineOp(env, exports, "clipGradNorm", [](Args& a) {
    const std::vector<at::Tensor> g = a.tl(0);
    const double maxNorm = a.d(1), normType = a.d(2);
    if (g.empty()) return a.num(0);
    at::NoGradGuard noGrad;
    at::Tensor total;
    if (std::isinf(normType)) {
      std::vector<at::Tensor> maxima;
      maxima.reserve(g.size());
      for (const auto& t : g) maxima.push_back(t.abs().max());
      total = at::stack(maxima).max();
    } else {
      total = at::stack(at::_foreach_norm(g, normType)).norm(normType);
    }
    const double value = total.item<double>();
    const double coef = maxNorm / (value + 1e-6);
    if (coef < 1) at::_foreach_mul_(g, coef);
    return a.num(value);
  });
}

}  // namespace t3d
