// Multi-tensor optimizer steps: one addon call updates a whole parameter group. On CUDA through libtorch's _foreach
// ops (a few multi-tensor kernels per step instead of several launches per parameter, PyTorch's foreach AdamW); on
// the CPU Adam(W) is one fused pass per tensor, since there the _foreach ops are per-tensor loops that each stream
// the optimizer state through memory once.
#include "common.h"

#include <ATen/Parallel.h>

namespace t3d {

namespace {
void sameLength(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, const char* what) {
  if (a.size() != b.size()) throw ArgError(std::string(what) + ": " + std::to_string(a.size()) + " parameters but " + std::to_string(b.size()) + " other tensors");
}

struct AdamHyper { double lr, beta1, beta2, eps, wd; bool decoupled; double stepSize, bc2Sqrt; };

void adamForeach(std::vector<at::Tensor>& p, std::vector<at::Tensor> g, std::vector<at::Tensor>& m, std::vector<at::Tensor>& v, const AdamHyper& h) {
  if (h.wd != 0) {
    if (h.decoupled) at::_foreach_mul_(p, 1 - h.lr * h.wd);
    else g = at::_foreach_add(g, p, h.wd);
  }
#if TORCH_VERSION_MAJOR >= 2
  at::_foreach_lerp_(m, g, 1 - h.beta1);
#else
  for (size_t i = 0; i < m.size(); ++i) m[i].lerp_(g[i], 1 - h.beta1);  // libtorch 1.x has no _foreach_lerp_
#endif
  at::_foreach_mul_(v, h.beta2);
  at::_foreach_addcmul_(v, g, g, 1 - h.beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, h.bc2Sqrt);
  at::_foreach_add_(denom, h.eps);
  at::_foreach_addcdiv_(p, m, denom, h.stepSize);
}

// Strides equal where they matter: a size-1 dimension's stride is arbitrary (a channels-last 1×1×1 kernel's
// gradient may come back with row-major strides, the same memory order).
bool sameLayout(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

// Dense CPU float tensors laid out alike (parameter, gradient and moments), so one flat index walks all four.
bool fusable(const at::Tensor& p, const at::Tensor& g, const at::Tensor& m, const at::Tensor& v) {
  if (!p.device().is_cpu() || (p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble)) return false;
  for (const at::Tensor* t : {&g, &m, &v}) {
    if (!t->device().is_cpu() || t->scalar_type() != p.scalar_type() || !sameLayout(*t, p)) return false;
  }
  return p.is_non_overlapping_and_dense();
}

// The eight element-wise passes of the _foreach update in one: each element of the four tensors is read once and
// written once, where the passes stream the optimizer state through memory about three times. The arithmetic is the
// ops' own, in their order and precision. Compiled per instruction set (chosen at load time) at -O3 (with the build's
// -fno-math-errno), so the loop vectorises as ATen's kernels do.
template <typename T>
struct AdamScalars { T decay, wd, w1, b2, w2, bc2, eps, stepSize; bool decoupledDecay, l2; };

template <typename T>
inline __attribute__((always_inline)) void adamSpan(T* __restrict P, const T* __restrict G, T* __restrict M, T* __restrict V, int64_t n, const AdamScalars<T>& k) {
  for (int64_t i = 0; i < n; ++i) {
    T pi = P[i], gi = G[i];
    if (k.decoupledDecay) pi = pi * k.decay;
    if (k.l2) gi = gi + k.wd * pi;
    const T mi = M[i] + k.w1 * (gi - M[i]);
    const T vi = V[i] * k.b2 + k.w2 * gi * gi;
    const T denom = std::sqrt(vi) / k.bc2 + k.eps;
    P[i] = pi + k.stepSize * (mi / denom);
    M[i] = mi;
    V[i] = vi;
  }
}

#define T3D_ADAM_SPAN(T)                                                                                         \
  __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3"))) void adamSpan_##T( \
      T* P, const T* G, T* M, T* V, int64_t n, const AdamScalars<T>& k) {                                        \
    adamSpan(P, G, M, V, n, k);                                                                                  \
  }
T3D_ADAM_SPAN(float)
T3D_ADAM_SPAN(double)
#undef T3D_ADAM_SPAN

template <typename T>
void adamFused(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, const AdamHyper& h) {
  T* P = p.data_ptr<T>();
  const T* G = g.data_ptr<T>();
  T* M = m.data_ptr<T>();
  T* V = v.data_ptr<T>();
  const AdamScalars<T> k{static_cast<T>(1 - h.lr * h.wd), static_cast<T>(h.wd), static_cast<T>(1 - h.beta1), static_cast<T>(h.beta2),
                         static_cast<T>(1 - h.beta2), static_cast<T>(h.bc2Sqrt), static_cast<T>(h.eps), static_cast<T>(h.stepSize),
                         h.wd != 0 && h.decoupled, h.wd != 0 && !h.decoupled};
  at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<T, float>) adamSpan_float(P + begin, G + begin, M + begin, V + begin, end - begin, k);
    else adamSpan_double(P + begin, G + begin, M + begin, V + begin, end - begin, k);
  });
}
}  // namespace

void initOptim(Napi::Env env, Napi::Object exports) {
  // (params, grads, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, decoupled, stepSize, bc2Sqrt): Adam(W) in
  // PyTorch's order; stepSize = -lr / (1 - beta1^t) and bc2Sqrt = sqrt(1 - beta2^t) come from the caller
  // (params, grads, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, decoupled, stepSize, bc2Sqrt): Adam(W) in
  // PyTorch's order; stepSize = -lr / (1 - beta1^t) and bc2Sqrt = sqrt(1 - beta2^t) come from the caller
  defineOp(env, exports, "adamStep", [](Args& a) {
    std::vector<at::Tensor> p = a.tl(0), g = a.tl(1), m = a.tl(2), v = a.tl(3);
    sameLength(p, g, "adamStep");
    sameLength(p, m, "adamStep");
    sameLength(p, v, "adamStep");
    const AdamHyper h{a.d(4), a.d(5), a.d(6), a.d(7), a.d(8), a.b(9), a.d(10), a.d(11)};
    at::NoGradGuard noGrad;
    // CPU tensors take the one-pass loop; the rest (CUDA, other dtypes or layouts) the _foreach ops
    std::vector<at::Tensor> fp, fg, fm, fv;
    for (size_t i = 0; i < p.size(); ++i) {
      if (fusable(p[i], g[i], m[i], v[i])) {
        if (p[i].scalar_type() == at::kFloat) adamFused<float>(p[i], g[i], m[i], v[i], h);
        else adamFused<double>(p[i], g[i], m[i], v[i], h);
      } else {
        fp.push_back(p[i]), fg.push_back(g[i]), fm.push_back(m[i]), fv.push_back(v[i]);
      }
    }
    if (!fp.empty()) adamForeach(fp, fg, fm, fv, h);
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
