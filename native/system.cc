// Engine facts and global settings: seeds, threads, build configuration, CUDA.
#include "common.h"
#include <ATen/Parallel.h>
#include <torch/cuda.h>

namespace t3d {

void initSystem(Napi::Env env, Napi::Object exports) {
  defineOp(env, exports, "manualSeed", [](Args& a) {
    const uint64_t seed = static_cast<uint64_t>(a.i(0));
    at::manual_seed(seed);  // CPU and, when present, every CUDA device
    return a.undef();
  });
  defineOp(env, exports, "setNumThreads", [](Args& a) {
    const int64_t n = a.i(0);
    if (n < 1) throw ArgError("setNumThreads: need at least 1 thread, got " + std::to_string(n));
    at::set_num_threads(static_cast<int>(n));
    return a.undef();
  });
  defineOp(env, exports, "getNumThreads", [](Args& a) { return a.num(at::get_num_threads()); });
  defineOp(env, exports, "cudaIsAvailable", [](Args& a) { return a.boolean(torch::cuda::is_available()); });
  defineOp(env, exports, "cudaDeviceCount", [](Args& a) { return a.num(static_cast<double>(torch::cuda::device_count())); });
  defineOp(env, exports, "cudaSynchronize", [](Args& a) {
    if (torch::cuda::is_available()) torch::cuda::synchronize();
    return a.undef();
  });
  defineOp(env, exports, "buildInfo", [](Args& a) {
    Napi::Object o = Napi::Object::New(a.env());
    o.Set("torchVersion", TORCH_VERSION);
    o.Set("torchVersionMajor", TORCH_VERSION_MAJOR);
    o.Set("torchVersionMinor", TORCH_VERSION_MINOR);
    o.Set("config", at::show_config());
    o.Set("parallel", at::get_parallel_info());
    o.Set("mkldnn", at::hasMKLDNN());
    o.Set("openmp", at::hasOpenMP());
    o.Set("mkl", at::hasMKL());
    o.Set("lapack", at::hasLAPACK());
    o.Set("cudaCompiled", at::hasCUDA());
    o.Set("cudaAvailable", torch::cuda::is_available());
    o.Set("cudaDeviceCount", static_cast<double>(torch::cuda::device_count()));
    o.Set("sdpaNative", TORCH_VERSION_MAJOR >= 2);
    return Napi::Value(o);
  });
}

}  // namespace t3d
