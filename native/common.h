// Shared declarations of the addon: tensor handle registry, argument parsing, error translation.
// Every translation unit includes this first; the build precompiles it (torch headers are heavy).
#ifndef T3D_NATIVE_COMMON_H
#define T3D_NATIVE_COMMON_H

#define NAPI_VERSION 8
#define NAPI_DISABLE_CPP_EXCEPTIONS
#include <napi.h>
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace t3d {

// A JS-visible tensor handle is a double: slot + generation * 2^24. The generation makes a stale
// handle (used after dispose, slot reused) fail loudly instead of touching another tensor.
double registerTensor(Napi::Env env, at::Tensor t);
at::Tensor& lookupTensor(double id);
bool freeTensor(Napi::Env env, double id);

struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Positional argument reader: every op validates what it reads, so misuse from JS throws.
class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info) {}
  Napi::Env env() const { return info_.Env(); }
  size_t size() const { return info_.Length(); }
  bool has(size_t i) const { return i < info_.Length() && !info_[i].IsUndefined() && !info_[i].IsNull(); }

  at::Tensor& t(size_t i) const;
  c10::optional<at::Tensor> ot(size_t i) const;
  std::vector<at::Tensor> tl(size_t i) const;
  int64_t i(size_t i) const;
  c10::optional<int64_t> oi(size_t i) const;
  double d(size_t i) const;
  c10::optional<double> od(size_t i) const;
  bool b(size_t i) const;
  std::string s(size_t i) const;
  std::vector<int64_t> il(size_t i) const;
  std::vector<double> dl(size_t i) const;
  c10::optional<std::vector<int64_t>> oil(size_t i) const;
  at::Scalar sc(size_t i) const;
  at::ScalarType dtype(size_t i, at::ScalarType dflt) const;
  at::Device device(size_t i) const;
  at::TensorOptions opts(size_t dtypeIdx, size_t deviceIdx, at::ScalarType dflt = at::kFloat) const;
  c10::optional<at::Generator> gen(size_t i) const;

  Napi::Value ret(at::Tensor t) const { return Napi::Number::New(env(), registerTensor(env(), std::move(t))); }
  Napi::Value ret(const std::vector<at::Tensor>& ts) const;
  Napi::Value ret(const std::tuple<at::Tensor, at::Tensor>& ts) const;
  Napi::Value num(double v) const { return Napi::Number::New(env(), v); }
  Napi::Value boolean(bool v) const { return Napi::Boolean::New(env(), v); }
  Napi::Value undef() const { return env().Undefined(); }
  Napi::Value raw(size_t i) const { return at(i); }

 private:
  const Napi::CallbackInfo& info_;
  Napi::Value at(size_t i) const;
};

using OpFn = Napi::Value (*)(Args&);

// Registers `fn` as exports[name]; C++ exceptions (libtorch's included) become JS Errors.
void defineOp(Napi::Env env, Napi::Object exports, const char* name, OpFn fn);

// Per-file registration hooks, called from module init.
void initRegistry(Napi::Env env, Napi::Object exports);
void initCreation(Napi::Env env, Napi::Object exports);
void initMath(Napi::Env env, Napi::Object exports);
void initShape(Napi::Env env, Napi::Object exports);
void initNN(Napi::Env env, Napi::Object exports);
void initAutograd(Napi::Env env, Napi::Object exports);
void initSystem(Napi::Env env, Napi::Object exports);
void initDistributed(Napi::Env env, Napi::Object exports);
void initOptim(Napi::Env env, Napi::Object exports);

}  // namespace t3d

#endif
