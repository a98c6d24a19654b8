// Tensor creation, random generators, data transfer to and from JS, metadata.
#include "common.h"

namespace t3d {
namespace {

thread_local std::vector<at::Generator> generators;

at::Generator& generatorAt(int64_t id) {
  if (id < 0 || id >= static_cast<int64_t>(generators.size())) throw ArgError("invalid generator handle " + std::to_string(id));
  return generators[static_cast<size_t>(id)];
}

at::Generator defaultGenerator(const at::Device& device) {
  if (device.is_cuda()) return at::globalContext().defaultGenerator(device);
  return at::detail::getDefaultCPUGenerator();
}

}  // namespace

c10::optional<at::Generator> Args::gen(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return generatorAt(this->i(i));
}

void initCreation(Napi::Env env, Napi::Object exports) {
  // (shape, dtype?, device?)
  defineOp(env, exports, "zeros", [](Args& a) { return a.ret(at::zeros(a.il(0), a.opts(1, 2))); });
  defineOp(env, exports, "ones", [](Args& a) { return a.ret(at::ones(a.il(0), a.opts(1, 2))); });
  defineOp(env, exports, "empty", [](Args& a) { return a.ret(at::empty(a.il(0), a.opts(1, 2))); });
  // (t, value, dtype?, device?): t's shape and layout (a channels-last tensor's are channels-last, as torch.full_like)
  defineOp(env, exports, "fullLike", [](Args& a) {
    const at::Tensor& t = a.t(0);
    return a.ret(at::full_like(t, a.sc(1), t.options().dtype(a.dtype(2, t.scalar_type())).device(a.has(3) ? a.device(3) : t.device())));
  });
  defineOp(env, exports, "full", [](Args& a) { return a.ret(at::full(a.il(0), a.sc(1), a.opts(2, 3))); });
  defineOp(env, exports, "arange", [](Args& a) {
    return a.ret(at::arange(a.sc(0), a.sc(1), a.sc(2), a.opts(3, 4, at::kLong)));
  });
  defineOp(env, exports, "linspace", [](Args& a) { return a.ret(at::linspace(a.sc(0), a.sc(1), a.i(2), a.opts(3, 4))); });
  defineOp(env, exports, "eye", [](Args& a) { return a.ret(at::eye(a.i(0), a.i(1), a.opts(2, 3))); });
  // (shape, dtype?, device?, generator?)
  defineOp(env, exports, "rand", [](Args& a) { return a.ret(at::rand(a.il(0), a.gen(3), a.opts(1, 2))); });
  defineOp(env, exports, "randn", [](Args& a) { return a.ret(at::randn(a.il(0), a.gen(3), a.opts(1, 2))); });
  // (low, high, shape, dtype?, device?, generator?)
  defineOp(env, exports, "randint", [](Args& a) {
    return a.ret(at::randint(a.i(0), a.i(1), a.il(2), a.gen(5), a.opts(3, 4, at::kLong)));
  });
  // (n, dtype?, device?, generator?)
  defineOp(env, exports, "randperm", [](Args& a) { return a.ret(at::randperm(a.i(0), a.gen(3), a.opts(1, 2, at::kLong))); });
  // in-place samplers used by initialisers: (t, a, b, generator?)
  defineOp(env, exports, "uniform_", [](Args& a) { at::NoGradGuard ng; a.t(0).uniform_(a.d(1), a.d(2), a.gen(3)); return a.undef(); });
  defineOp(env, exports, "normal_", [](Args& a) { at::NoGradGuard ng; a.t(0).normal_(a.d(1), a.d(2), a.gen(3)); return a.undef(); });
  defineOp(env, exports, "bernoulli", [](Args& a) { return a.ret(at::bernoulli(a.t(0), a.gen(1))); });

  defineOp(env, exports, "generatorNew", [](Args& a) {
    at::Generator g = a.device(1).is_cuda() ? defaultGenerator(a.device(1)).clone() : at::detail::createCPUGenerator();
    g.set_current_seed(static_cast<uint64_t>(a.i(0)));
    generators.push_back(g);
    return a.num(static_cast<double>(generators.size() - 1));
  });
  defineOp(env, exports, "generatorSeed", [](Args& a) {
    at::Generator& g = generatorAt(a.i(0));
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_current_seed(static_cast<uint64_t>(a.i(1)));
    return a.undef();
  });
  // state as a uint8 tensor (generator handle, or -1 for the default CPU generator)
  defineOp(env, exports, "generatorGetState", [](Args& a) {
    at::Generator g = a.i(0) < 0 ? defaultGenerator(at::Device(at::kCPU)) : generatorAt(a.i(0));
    std::lock_guard<std::mutex> lock(g.mutex());
    return a.ret(g.get_state());
  });
  defineOp(env, exports, "generatorSetState", [](Args& a) {
    at::Generator g = a.i(0) < 0 ? defaultGenerator(at::Device(at::kCPU)) : generatorAt(a.i(0));
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(a.t(1));
    return a.undef();
  });

  // (bytes: TypedArray, shape, dtype, pinned?) → a CPU tensor holding a copy of the bytes; pinned (page-locked)
  // memory lets a later copy to a CUDA device run asynchronously
  defineOp(env, exports, "fromBytes", [](Args& a) {
    Napi::Value v = a.raw(0);
    if (!v.IsTypedArray()) throw ArgError("fromBytes: data must be a TypedArray");
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    const std::vector<int64_t> shape = a.il(1);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(a.dtype(2, at::kFloat)).pinned_memory(a.has(3) && a.b(3)));
    const size_t byteLength = ta.ByteLength();
    if (byteLength != t.nbytes())
      throw ArgError("fromBytes: data has " + std::to_string(byteLength) + " bytes, shape and dtype need " + std::to_string(t.nbytes()));
    const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    if (byteLength > 0) std::memcpy(t.data_ptr(), src, byteLength);
    return a.ret(std::move(t));
  });
  // (t) → Buffer with a copy of the tensor's bytes in row-major order
  defineOp(env, exports, "toBytes", [](Args& a) {
    at::Tensor t = a.t(0).detach().to(at::kCPU).contiguous();
    return Napi::Value(Napi::Buffer<uint8_t>::Copy(a.env(), static_cast<const uint8_t*>(t.data_ptr()), t.nbytes()));
  });
  defineOp(env, exports, "item", [](Args& a) {
    at::Tensor& t = a.t(0);
    if (t.numel() != 1) throw ArgError("item(): tensor has " + std::to_string(t.numel()) + " elements, expected 1");
    at::Scalar s = t.item();
    if (s.isBoolean()) return a.boolean(s.toBool());
    return a.num(s.toDouble());
  });
  defineOp(env, exports, "shape", [](Args& a) {
    auto sizes = a.t(0).sizes();
    Napi::Array out = Napi::Array::New(a.env(), sizes.size());
    for (uint32_t k = 0; k < sizes.size(); ++k) out.Set(k, Napi::Number::New(a.env(), static_cast<double>(sizes[k])));
    return Napi::Value(out);
  });
  defineOp(env, exports, "strides", [](Args& a) {
    auto st = a.t(0).strides();
    Napi::Array out = Napi::Array::New(a.env(), st.size());
    for (uint32_t k = 0; k < st.size(); ++k) out.Set(k, Napi::Number::New(a.env(), static_cast<double>(st[k])));
    return Napi::Value(out);
  });
  defineOp(env, exports, "dtype", [](Args& a) { return a.num(static_cast<double>(a.t(0).scalar_type())); });
  defineOp(env, exports, "device", [](Args& a) { return Napi::Value(Napi::String::New(a.env(), a.t(0).device().str())); });
  defineOp(env, exports, "isContiguous", [](Args& a) { return a.boolean(a.t(0).is_contiguous()); });
  // (t, dtype?, device?, copy?, nonBlocking?)
  defineOp(env, exports, "to", [](Args& a) {
    at::Tensor& t = a.t(0);
    at::ScalarType dt = a.dtype(1, t.scalar_type());
    at::Device dev = a.has(2) ? a.device(2) : t.device();
    return a.ret(t.to(dev, dt, /*non_blocking=*/a.has(4) && a.b(4), /*copy=*/a.b(3)));
  });
}

}  // namespace t3d
