// Shape manipulation, joining, splitting and indexing.
#include "common.h"

namespace t3d {

void initShape(Napi::Env env, Napi::Object exports) {
  defineOp(env, exports, "cat", [](Args& a) { return a.ret(at::cat(a.tl(0), a.i(1))); });
  defineOp(env, exports, "stack", [](Args& a) { return a.ret(at::stack(a.tl(0), a.i(1))); });
  // (x, sizeOrSizes, dim): a number splits in equal chunks of that size, an array gives each size
  defineOp(env, exports, "split", [](Args& a) {
    if (a.raw(1).IsArray()) return a.ret(at::split_with_sizes(a.t(0), a.il(1), a.i(2)));
    return a.ret(at::split(a.t(0), a.i(1), a.i(2)));
  });
  defineOp(env, exports, "chunk", [](Args& a) { return a.ret(at::chunk(a.t(0), a.i(1), a.i(2))); });
  defineOp(env, exports, "reshape", [](Args& a) { return a.ret(at::reshape(a.t(0), a.il(1))); });
  defineOp(env, exports, "view", [](Args& a) { return a.ret(a.t(0).view(a.il(1))); });
  defineOp(env, exports, "flatten", [](Args& a) { return a.ret(at::flatten(a.t(0), a.i(1), a.i(2))); });
  defineOp(env, exports, "permute", [](Args& a) { return a.ret(a.t(0).permute(a.il(1))); });
  defineOp(env, exports, "transpose", [](Args& a) { return a.ret(at::transpose(a.t(0), a.i(1), a.i(2))); });
  defineOp(env, exports, "squeeze", [](Args& a) { return a.ret(a.has(1) ? at::squeeze(a.t(0), a.i(1)) : at::squeeze(a.t(0))); });
  defineOp(env, exports, "unsqueeze", [](Args& a) { return a.ret(at::unsqueeze(a.t(0), a.i(1))); });
  defineOp(env, exports, "expand", [](Args& a) { return a.ret(a.t(0).expand(a.il(1))); });
  defineOp(env, exports, "repeat", [](Args& a) { return a.ret(a.t(0).repeat(a.il(1))); });
  defineOp(env, exports, "flip", [](Args& a) { return a.ret(at::flip(a.t(0), a.il(1))); });
  defineOp(env, exports, "roll", [](Args& a) { return a.ret(at::roll(a.t(0), a.il(1), a.il(2))); });
  defineOp(env, exports, "narrow", [](Args& a) { return a.ret(at::narrow(a.t(0), a.i(1), a.i(2), a.i(3))); });
  // (x, dim, start?, end?, step)
  defineOp(env, exports, "slice", [](Args& a) { return a.ret(at::slice(a.t(0), a.i(1), a.oi(2), a.oi(3), a.i(4))); });
  defineOp(env, exports, "select", [](Args& a) { return a.ret(at::select(a.t(0), a.i(1), a.i(2))); });
  defineOp(env, exports, "indexSelect", [](Args& a) { return a.ret(at::index_select(a.t(0), a.i(1), a.t(2))); });
  defineOp(env, exports, "gather", [](Args& a) { return a.ret(at::gather(a.t(0), a.i(1), a.t(2))); });
  defineOp(env, exports, "scatter", [](Args& a) { return a.ret(at::scatter(a.t(0), a.i(1), a.t(2), a.t(3))); });
  defineOp(env, exports, "scatterAdd", [](Args& a) { return a.ret(at::scatter_add(a.t(0), a.i(1), a.t(2), a.t(3))); });
  defineOp(env, exports, "maskedFill", [](Args& a) { return a.ret(at::masked_fill(a.t(0), a.t(1), a.sc(2))); });
  defineOp(env, exports, "maskedSelect", [](Args& a) { return a.ret(at::masked_select(a.t(0), a.t(1))); });
  defineOp(env, exports, "nonzero", [](Args& a) { return a.ret(at::nonzero(a.t(0))); });
  // (x, indices[]) advanced indexing along the leading dims; null entries take the whole dim
  defineOp(env, exports, "index", [](Args& a) {
    Napi::Array arr = a.raw(1).As<Napi::Array>();
    c10::List<c10::optional<at::Tensor>> idx;
    for (uint32_t k = 0; k < arr.Length(); ++k) {
      Napi::Value e = arr.Get(k);
      if (e.IsNull() || e.IsUndefined()) idx.push_back(c10::nullopt);
      else idx.push_back(lookupTensor(e.As<Napi::Number>().DoubleValue()));
    }
    return a.ret(at::index(a.t(0), idx));
  });
  defineOp(env, exports, "tril", [](Args& a) { return a.ret(at::tril(a.t(0), a.i(1))); });
  defineOp(env, exports, "triu", [](Args& a) { return a.ret(at::triu(a.t(0), a.i(1))); });
  defineOp(env, exports, "oneHot", [](Args& a) { return a.ret(at::one_hot(a.t(0), a.i(1))); });
}

}  // namespace t3d
