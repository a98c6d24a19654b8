// Engine facts and global settings: seeds, threads, build configuration, CUDA, autocast.
#include "common.h"
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#ifdef T3D_CUDA_RUNTIME
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace t3d {

namespace {
// Autocast state per device type; PyTorch 2.4 replaced the per-device functions with ones taking the type.
at::DeviceType autocastDevice(const std::string& d) {
  if (d == "cpu") return at::kCPU;
  if (d == "cuda") return at::kCUDA;
  throw ArgError("autocast: device type must be 'cpu' or 'cuda', got '" + d + "'");
}
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocastEnabled(at::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
at::ScalarType autocastDtype(at::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void setAutocast(at::DeviceType t, bool on, at::ScalarType dt) {
  at::autocast::set_autocast_enabled(t, on);
  at::autocast::set_autocast_dtype(t, dt);
}
#else
bool autocastEnabled(at::DeviceType t) { return t == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled(); }
at::ScalarType autocastDtype(at::DeviceType t) {
  return t == at::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void setAutocast(at::DeviceType t, bool on, at::ScalarType dt) {
  if (t == at::kCPU) {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(dt);
  } else {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(dt);
  }
}
#endif
}  // namespace

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
  // glibc serves every block over 32 MiB (and, once its threshold is fixed, over 128 KiB) with a fresh mmap and
  // returns freed heap tops to the kernel, so each training step page-faults its activations in anew. Keeping freed
  // memory in the heap for reuse (no mmap, no trimming: mallopt(3)) removes those faults; RSS then stays at the
  // process's peak. Returns false where the C library is not glibc (nothing changed).
  defineOp(env, exports, "keepHostMemory", [](Args& a) {
#ifdef __GLIBC__
    return a.boolean(mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 1);
#else
    return a.boolean(false);
#endif
  });
  defineOp(env, exports, "getNumThreads", [](Args& a) { return a.num(at::get_num_threads()); });
  defineOp(env, exports, "cudaIsAvailable", [](Args& a) { return a.boolean(torch::cuda::is_available()); });
  defineOp(env, exports, "cudaDeviceCount", [](Args& a) { return a.num(static_cast<double>(torch::cuda::device_count())); });
  defineOp(env, exports, "cudaSynchronize", [](Args& a) {
    if (torch::cuda::is_available()) torch::cuda::synchronize();
    return a.undef();
  });
  // (device, peak?) → bytes held by live tensors on the device now, or at most since the process started
  defineOp(env, exports, "cudaMemoryAllocated", [](Args& a) -> Napi::Value {
#ifdef T3D_CUDA_RUNTIME
    const int64_t d = a.i(0);
    if (d < 0 || d >= static_cast<int64_t>(torch::cuda::device_count())) throw ArgError("cuda.memoryAllocated: no CUDA device " + std::to_string(d));
    // before the first CUDA allocation the allocator holds no devices: nothing is allocated (as in PyTorch)
    if (!c10::cuda::CUDACachingAllocator::get()->initialized()) return a.num(0);
    // index 0 of each statistic is the aggregate over pool kinds (StatType::AGGREGATE in every 2.x)
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(d));
    return a.num(static_cast<double>(a.b(1) ? stats.allocated_bytes[0].peak : stats.allocated_bytes[0].current));
#else
    throw ArgError("cuda.memoryAllocated: this build has no CUDA runtime headers (see `t3d info`)");
#endif
  });
  // [enabled, dtype code] of the calling thread's autocast state
  defineOp(env, exports, "autocastGet", [](Args& a) {
    const at::DeviceType t = autocastDevice(a.s(0));
    Napi::Array r = Napi::Array::New(a.env(), 2);
    r.Set(0u, autocastEnabled(t));
    r.Set(1u, static_cast<double>(static_cast<int>(autocastDtype(t))));
    return Napi::Value(r);
  });
  defineOp(env, exports, "autocastSet", [](Args& a) {
    setAutocast(autocastDevice(a.s(0)), a.b(1), a.dtype(2, at::kBFloat16));
    return a.undef();
  });
  // Region nesting; leaving the outermost region frees the cache of casted weights (as torch.autocast does).
  defineOp(env, exports, "autocastEnter", [](Args& a) { return a.num(at::autocast::increment_nesting()); });
  defineOp(env, exports, "autocastExit", [](Args& a) {
    const int depth = at::autocast::decrement_nesting();
    if (depth == 0) at::autocast::clear_cache();
    return a.num(depth);
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
