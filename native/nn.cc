// Neural-network functional ops: convolutions, pooling, normalisation, resampling, losses.
#include "common.h"

namespace t3d {

namespace {
// Under autocast, CUDA runs layer and group norm in float32. libtorch 1.13's CPU autocast has no rule for them
// and rejects a bfloat16 input with float32 affine parameters, so the same upcast is done here.
at::Tensor normInput(const at::Tensor& x, const c10::optional<at::Tensor>& weight) {
  const bool reduced = x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf;
  if (reduced && weight && weight->defined() && weight->scalar_type() != x.scalar_type()) return x.to(weight->scalar_type());
  return x;
}
}  // namespace

void initNN(Napi::Env env, Napi::Object exports) {
  // (x, weight, bias?)
  defineOp(env, exports, "linear", [](Args& a) { return a.ret(at::linear(a.t(0), a.t(1), a.ot(2))); });
  // (x, weight, bias?, stride, padding, dilation, groups)
  defineOp(env, exports, "conv1d", [](Args& a) { return a.ret(at::conv1d(a.t(0), a.t(1), a.ot(2), a.il(3), a.il(4), a.il(5), a.i(6))); });
  defineOp(env, exports, "conv2d", [](Args& a) { return a.ret(at::conv2d(a.t(0), a.t(1), a.ot(2), a.il(3), a.il(4), a.il(5), a.i(6))); });
  defineOp(env, exports, "conv3d", [](Args& a) { return a.ret(at::conv3d(a.t(0), a.t(1), a.ot(2), a.il(3), a.il(4), a.il(5), a.i(6))); });
  // (x, weight, bias?, stride, padding, outputPadding, groups, dilation)
  defineOp(env, exports, "convTranspose3d", [](Args& a) {
    return a.ret(at::conv_transpose3d(a.t(0), a.t(1), a.ot(2), a.il(3), a.il(4), a.il(5), a.i(6), a.il(7)));
  });
  // (x, kernel, stride, padding, dilation, ceilMode)
  defineOp(env, exports, "maxPool3d", [](Args& a) { return a.ret(at::max_pool3d(a.t(0), a.il(1), a.il(2), a.il(3), a.il(4), a.b(5))); });
  defineOp(env, exports, "maxPool2d", [](Args& a) { return a.ret(at::max_pool2d(a.t(0), a.il(1), a.il(2), a.il(3), a.il(4), a.b(5))); });
  // (x, kernel, stride, padding, ceilMode, countIncludePad)
  defineOp(env, exports, "avgPool3d", [](Args& a) { return a.ret(at::avg_pool3d(a.t(0), a.il(1), a.il(2), a.il(3), a.b(4), a.b(5))); });
  defineOp(env, exports, "adaptiveAvgPool3d", [](Args& a) { return a.ret(at::adaptive_avg_pool3d(a.t(0), a.il(1))); });
  defineOp(env, exports, "adaptiveMaxPool3d", [](Args& a) { return a.ret(std::get<0>(at::adaptive_max_pool3d(a.t(0), a.il(1)))); });
  // (x, weight?, bias?, runningMean?, runningVar?, training, momentum, eps)
  defineOp(env, exports, "batchNorm", [](Args& a) {
    return a.ret(at::batch_norm(a.t(0), a.ot(1), a.ot(2), a.ot(3), a.ot(4), a.b(5), a.d(6), a.d(7), true));
  });
  // (x, groups, weight?, bias?, eps)
  defineOp(env, exports, "groupNorm", [](Args& a) { return a.ret(at::group_norm(normInput(a.t(0), a.ot(2)), a.i(1), a.ot(2), a.ot(3), a.d(4))); });
  // (x, normalizedShape, weight?, bias?, eps)
  defineOp(env, exports, "layerNorm", [](Args& a) { return a.ret(at::layer_norm(normInput(a.t(0), a.ot(2)), a.il(1), a.ot(2), a.ot(3), a.d(4))); });
  // (x, weight?, bias?, runningMean?, runningVar?, useInputStats, momentum, eps)
  defineOp(env, exports, "instanceNorm", [](Args& a) {
    return a.ret(at::instance_norm(a.t(0), a.ot(1), a.ot(2), a.ot(3), a.ot(4), a.b(5), a.d(6), a.d(7), true));
  });
  // (x, p, training)
  defineOp(env, exports, "dropout", [](Args& a) { return a.ret(at::dropout(a.t(0), a.d(1), a.b(2))); });
  // (weight, indices, paddingIdx)
  defineOp(env, exports, "embedding", [](Args& a) { return a.ret(at::embedding(a.t(0), a.t(1), a.i(2))); });
  // (x, outSize[3]) and (x, outSize[3], alignCorners)
  defineOp(env, exports, "upsampleNearest3d", [](Args& a) {
    return a.ret(at::upsample_nearest3d(a.t(0), a.il(1), c10::nullopt, c10::nullopt, c10::nullopt));
  });
  defineOp(env, exports, "upsampleTrilinear3d", [](Args& a) {
    return a.ret(at::upsample_trilinear3d(a.t(0), a.il(1), a.b(2), c10::nullopt, c10::nullopt, c10::nullopt));
  });
  defineOp(env, exports, "upsampleBilinear2d", [](Args& a) {
    return a.ret(at::upsample_bilinear2d(a.t(0), a.il(1), a.b(2), c10::nullopt, c10::nullopt));
  });
  defineOp(env, exports, "upsampleNearest2d", [](Args& a) {
    return a.ret(at::upsample_nearest2d(a.t(0), a.il(1), c10::nullopt, c10::nullopt));
  });
  // (x, pads, mode, value?) with torch.nn.functional.pad's pad order (last dim first)
  defineOp(env, exports, "pad", [](Args& a) {
    const std::string mode = a.s(2);
    if (mode == "constant") return a.ret(at::constant_pad_nd(a.t(0), a.il(1), a.has(3) ? a.sc(3) : at::Scalar(0)));
    return a.ret(at::pad(a.t(0), a.il(1), mode, c10::nullopt));
  });
  defineOp(env, exports, "cosineSimilarity", [](Args& a) { return a.ret(at::cosine_similarity(a.t(0), a.t(1), a.i(2), a.d(3))); });
  // reduction codes: 0 none, 1 mean, 2 sum (at::Reduction)
  // (input, target, weight?, reduction, ignoreIndex, labelSmoothing)
  defineOp(env, exports, "crossEntropy", [](Args& a) {
    return a.ret(at::cross_entropy_loss(a.t(0), a.t(1), a.ot(2), a.i(3), a.i(4), a.d(5)));
  });
  defineOp(env, exports, "nllLoss", [](Args& a) { return a.ret(at::nll_loss_nd(a.t(0), a.t(1), a.ot(2), a.i(3), a.i(4))); });
  // (input, target, weight?, posWeight?, reduction)
  defineOp(env, exports, "bceWithLogits", [](Args& a) {
    return a.ret(at::binary_cross_entropy_with_logits(a.t(0), a.t(1), a.ot(2), a.ot(3), a.i(4)));
  });
  defineOp(env, exports, "mseLoss", [](Args& a) { return a.ret(at::mse_loss(a.t(0), a.t(1), a.i(2))); });
  defineOp(env, exports, "l1Loss", [](Args& a) { return a.ret(at::l1_loss(a.t(0), a.t(1), a.i(2))); });
  defineOp(env, exports, "smoothL1Loss", [](Args& a) { return a.ret(at::smooth_l1_loss(a.t(0), a.t(1), a.i(2), a.d(3))); });
#if TORCH_VERSION_MAJOR >= 2
  // (q, k, v, mask?, dropoutP, isCausal)
  defineOp(env, exports, "scaledDotProductAttention", [](Args& a) {
    return a.ret(at::scaled_dot_product_attention(a.t(0), a.t(1), a.t(2), a.ot(3), a.d(4), a.b(5)));
  });
#endif
}

}  // namespace t3d
