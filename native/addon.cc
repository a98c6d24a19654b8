// Module entry point: registers every op table.
#include "common.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  t3d::initRegistry(env, exports);
  t3d::initCreation(env, exports);
  t3d::initMath(env, exports);
  t3d::initShape(env, exports);
  t3d::initNN(env, exports);
  t3d::initAutograd(env, exports);
  t3d::initSystem(env, exports);
  t3d::initDistributed(env, exports);
  t3d::initOptim(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(t3d_native, Init)
