// Tensor handle table, native scopes and argument parsing.
#include "common.h"

namespace t3d {
namespace {

constexpr double kSlotSpan = 16777216.0;  // 2^24 slots

struct Slot {
  at::Tensor tensor;
  uint32_t generation = 0;
  bool live = false;
  bool kept = false;  // excluded from scope cleanup (parameters, optimizer state)
  int64_t bytes = 0;
};

// thread_local: each Node worker thread has its own isolate and its own handle table.
thread_local std::vector<Slot> slots;
thread_local std::vector<uint32_t> freeSlots;
thread_local std::vector<std::vector<double>> scopes;  // stack; each holds the handles created inside it
thread_local size_t liveCount = 0;

int64_t accountedBytes(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() ? static_cast<int64_t>(t.nbytes()) : 0;
}

Slot* find(double id) {
  if (!(id >= 0)) return nullptr;
  const double slotPart = std::fmod(id, kSlotSpan);
  const size_t index = static_cast<size_t>(slotPart);
  const uint32_t generation = static_cast<uint32_t>((id - slotPart) / kSlotSpan);
  if (index >= slots.size()) return nullptr;
  Slot& s = slots[index];
  if (!s.live || s.generation != generation) return nullptr;
  return &s;
}

}  // namespace

double registerTensor(Napi::Env env, at::Tensor t) {
  uint32_t index;
  if (!freeSlots.empty()) {
    index = freeSlots.back();
    freeSlots.pop_back();
  } else {
    if (slots.size() >= static_cast<size_t>(kSlotSpan)) throw std::runtime_error("too many live tensors (2^24)");
    index = static_cast<uint32_t>(slots.size());
    slots.emplace_back();
  }
  Slot& s = slots[index];
  s.generation += 1;
  s.live = true;
  s.kept = false;
  s.bytes = accountedBytes(t);
  s.tensor = std::move(t);
  ++liveCount;
  if (s.bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, s.bytes);
  const double id = static_cast<double>(index) + static_cast<double>(s.generation) * kSlotSpan;
  if (!scopes.empty()) scopes.back().push_back(id);
  return id;
}

at::Tensor& lookupTensor(double id) {
  Slot* s = find(id);
  if (!s) throw ArgError("tensor is disposed or invalid (handle " + std::to_string(static_cast<int64_t>(id)) + ")");
  return s->tensor;
}

bool freeTensor(Napi::Env env, double id) {
  Slot* s = find(id);
  if (!s) return false;
  if (s->bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -s->bytes);
  s->tensor = at::Tensor();
  s->live = false;
  s->kept = false;
  s->bytes = 0;
  --liveCount;
  freeSlots.push_back(static_cast<uint32_t>(std::fmod(id, kSlotSpan)));
  return true;
}

// ---- Args -------------------------------------------------------------------------------------

Napi::Value Args::at(size_t i) const {
  if (i >= info_.Length()) throw ArgError("missing argument " + std::to_string(i));
  return info_[i];
}

at::Tensor& Args::t(size_t i) const {
  Napi::Value v = at(i);
  if (!v.IsNumber()) throw ArgError("argument " + std::to_string(i) + " must be a tensor");
  return lookupTensor(v.As<Napi::Number>().DoubleValue());
}

c10::optional<at::Tensor> Args::ot(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return t(i);
}

std::vector<at::Tensor> Args::tl(size_t i) const {
  Napi::Value v = at(i);
  if (!v.IsArray()) throw ArgError("argument " + std::to_string(i) + " must be an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    if (!e.IsNumber()) throw ArgError("argument " + std::to_string(i) + "[" + std::to_string(k) + "] must be a tensor");
    out.push_back(lookupTensor(e.As<Napi::Number>().DoubleValue()));
  }
  return out;
}

int64_t Args::i(size_t i) const {
  Napi::Value v = at(i);
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (!v.IsNumber()) throw ArgError("argument " + std::to_string(i) + " must be an integer");
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x) || std::floor(x) != x) throw ArgError("argument " + std::to_string(i) + " must be an integer, got " + std::to_string(x));
  return static_cast<int64_t>(x);
}

c10::optional<int64_t> Args::oi(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return this->i(i);
}

double Args::d(size_t i) const {
  Napi::Value v = at(i);
  if (!v.IsNumber()) throw ArgError("argument " + std::to_string(i) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

c10::optional<double> Args::od(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return d(i);
}

bool Args::b(size_t i) const {
  if (!has(i)) return false;
  Napi::Value v = at(i);
  if (!v.IsBoolean()) throw ArgError("argument " + std::to_string(i) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string Args::s(size_t i) const {
  Napi::Value v = at(i);
  if (!v.IsString()) throw ArgError("argument " + std::to_string(i) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> Args::il(size_t i) const {
  Napi::Value v = at(i);
  if (v.IsNumber()) return {this->i(i)};
  if (!v.IsArray()) throw ArgError("argument " + std::to_string(i) + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    const double x = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(x) || std::floor(x) != x)
      throw ArgError("argument " + std::to_string(i) + "[" + std::to_string(k) + "] must be an integer");
    out[k] = static_cast<int64_t>(x);
  }
  return out;
}

std::vector<double> Args::dl(size_t i) const {
  Napi::Value v = at(i);
  if (!v.IsArray()) throw ArgError("argument " + std::to_string(i) + " must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    if (!e.IsNumber()) throw ArgError("argument " + std::to_string(i) + "[" + std::to_string(k) + "] must be a number");
    out[k] = e.As<Napi::Number>().DoubleValue();
  }
  return out;
}

c10::optional<std::vector<int64_t>> Args::oil(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return il(i);
}

at::Scalar Args::sc(size_t i) const {
  Napi::Value v = at(i);
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  if (!v.IsNumber()) throw ArgError("argument " + std::to_string(i) + " must be a number");
  const double x = v.As<Napi::Number>().DoubleValue();
  // Integral JS numbers act like Python ints so integer tensors keep their dtype.
  if (std::isfinite(x) && std::floor(x) == x && std::fabs(x) < 9007199254740992.0) return at::Scalar(static_cast<int64_t>(x));
  return at::Scalar(x);
}

at::ScalarType Args::dtype(size_t i, at::ScalarType dflt) const {
  if (!has(i)) return dflt;
  const int64_t code = this->i(i);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) throw ArgError("invalid dtype code " + std::to_string(code));
  return static_cast<at::ScalarType>(code);
}

at::Device Args::device(size_t i) const {
  if (!has(i)) return at::Device(at::kCPU);
  return at::Device(s(i));
}

at::TensorOptions Args::opts(size_t dtypeIdx, size_t deviceIdx, at::ScalarType dflt) const {
  return at::TensorOptions().dtype(dtype(dtypeIdx, dflt)).device(device(deviceIdx));
}

Napi::Value Args::ret(const std::vector<at::Tensor>& ts) const {
  Napi::Array a = Napi::Array::New(env(), ts.size());
  for (uint32_t k = 0; k < ts.size(); ++k) a.Set(k, Napi::Number::New(env(), registerTensor(env(), ts[k])));
  return a;
}

Napi::Value Args::ret(const std::tuple<at::Tensor, at::Tensor>& ts) const {
  return ret(std::vector<at::Tensor>{std::get<0>(ts), std::get<1>(ts)});
}

// ---- op registration ----------------------------------------------------------------------------

namespace {
Napi::Value dispatch(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<OpFn>(info.Data());
  Args args(info);
  try {
    return fn(args);
  } catch (const c10::Error& e) {
    Napi::Error::New(info.Env(), e.what_without_backtrace()).ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    Napi::Error::New(info.Env(), e.what()).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}
}  // namespace

void defineOp(Napi::Env env, Napi::Object exports, const char* name, OpFn fn) {
  exports.Set(name, Napi::Function::New(env, dispatch, name, reinterpret_cast<void*>(fn)));
}

// ---- registry ops -------------------------------------------------------------------------------

void initRegistry(Napi::Env env, Napi::Object exports) {
  defineOp(env, exports, "free", [](Args& a) { return a.boolean(freeTensor(a.env(), a.d(0))); });
  defineOp(env, exports, "isLive", [](Args& a) { return a.boolean(find(a.d(0)) != nullptr); });
  defineOp(env, exports, "liveCount", [](Args& a) { return a.num(static_cast<double>(liveCount)); });
  defineOp(env, exports, "keep", [](Args& a) {
    Slot* s = find(a.d(0));
    if (!s) throw ArgError("keep: tensor is disposed or invalid");
    s->kept = true;
    return a.undef();
  });
  defineOp(env, exports, "scopeBegin", [](Args& a) {
    scopes.emplace_back();
    return a.num(static_cast<double>(scopes.size()));
  });
  // Frees every non-kept tensor created in the innermost scope except `survivors`, which move to the
  // enclosing scope (tfjs `tidy` semantics).
  defineOp(env, exports, "scopeEnd", [](Args& a) {
    if (scopes.empty()) throw ArgError("scopeEnd without scopeBegin");
    std::vector<double> created = std::move(scopes.back());
    scopes.pop_back();
    std::vector<double> survivors = a.has(0) ? a.dl(0) : std::vector<double>{};
    std::sort(survivors.begin(), survivors.end());
    size_t freed = 0;
    for (double id : created) {
      Slot* s = find(id);
      if (!s || s->kept) continue;
      if (std::binary_search(survivors.begin(), survivors.end(), id)) {
        if (!scopes.empty()) scopes.back().push_back(id);
        continue;
      }
      freeTensor(a.env(), id);
      ++freed;
    }
    return a.num(static_cast<double>(freed));
  });
  defineOp(env, exports, "scopeDepth", [](Args& a) { return a.num(static_cast<double>(scopes.size())); });
}

}  // namespace t3d
