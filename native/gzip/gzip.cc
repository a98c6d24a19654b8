// Whole-buffer gzip inflation with libdeflate (about twice zlib's speed on CT volumes; BENCHMARKS.md), as its own
// small addon: preprocessing inflates in worker threads, which do not load the tensor engine. No global state, so
// every thread's instance is independent.
//   gunzipSync(src, dst) → bytes written to dst
//   gunzip(src, dst, callback(err, bytes)) — the same on libuv's thread pool; src and dst stay referenced until done
// Concatenated gzip members are inflated one after another and zero padding after the last is ignored, as zlib does;
// other trailing bytes are an error. A stream that does not fit in dst fails with "inflates past".
#define NAPI_VERSION 8
#define NAPI_DISABLE_CPP_EXCEPTIONS
#include <napi.h>
#include <libdeflate.h>

#include <cstdint>
#include <string>

namespace {

struct Result {
  size_t written = 0;
  std::string error;  // empty on success
};

Result inflateMembers(const uint8_t* in, size_t inSize, uint8_t* out, size_t outSize) {
  Result r;
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  if (!d) return {0, "out of memory"};
  size_t pos = 0;
  do {
    size_t used = 0, produced = 0;
    const libdeflate_result rc = libdeflate_gzip_decompress_ex(d, in + pos, inSize - pos, out + r.written, outSize - r.written, &used, &produced);
    if (rc == LIBDEFLATE_INSUFFICIENT_SPACE) { r.error = "inflates past " + std::to_string(outSize) + " bytes"; break; }
    if (rc != LIBDEFLATE_SUCCESS) { r.error = "libdeflate: bad or truncated data"; break; }
    pos += used;
    r.written += produced;
    if (pos < inSize && !(in[pos] == 0x1f && (pos + 1 == inSize || in[pos + 1] == 0x8b))) {
      // zero padding after the last member is ignored, anything else is an error (as zlib does)
      while (pos < inSize && in[pos] == 0) ++pos;
      if (pos < inSize) r.error = "libdeflate: trailing garbage after gzip member";
      break;
    }
  } while (pos < inSize);
  libdeflate_free_decompressor(d);
  return r;
}

bool bytesOf(const Napi::Value& v, const uint8_t** data, size_t* size) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  *data = a.Data();
  *size = a.ByteLength();
  return true;
}

Napi::Value GunzipSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t *src, *dst;
  size_t srcSize, dstSize;
  if (info.Length() < 2 || !bytesOf(info[0], &src, &srcSize) || !bytesOf(info[1], &dst, &dstSize)) {
    Napi::TypeError::New(env, "gunzipSync(src: Uint8Array, dst: Uint8Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const Result r = inflateMembers(src, srcSize, const_cast<uint8_t*>(dst), dstSize);
  if (!r.error.empty()) {
    Napi::Error::New(env, r.error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(r.written));
}

class GunzipWorker : public Napi::AsyncWorker {
 public:
  GunzipWorker(Napi::Function cb, Napi::Uint8Array src, Napi::Uint8Array dst)
      : Napi::AsyncWorker(cb), src_(Napi::Persistent(src)), dst_(Napi::Persistent(dst)),
        in_(src.Data()), inSize_(src.ByteLength()), out_(dst.Data()), outSize_(dst.ByteLength()) {}
  void Execute() override {
    result_ = inflateMembers(in_, inSize_, out_, outSize_);
    if (!result_.error.empty()) SetError(result_.error);
  }
  void OnOK() override { Callback().Call({Env().Null(), Napi::Number::New(Env(), static_cast<double>(result_.written))}); }

 private:
  Napi::Reference<Napi::Uint8Array> src_, dst_;
  const uint8_t* in_;
  size_t inSize_;
  uint8_t* out_;
  size_t outSize_;
  Result result_;
};

Napi::Value Gunzip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t *src, *dst;
  size_t srcSize, dstSize;
  if (info.Length() < 3 || !bytesOf(info[0], &src, &srcSize) || !bytesOf(info[1], &dst, &dstSize) || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "gunzip(src: Uint8Array, dst: Uint8Array, callback)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  (new GunzipWorker(info[2].As<Napi::Function>(), info[0].As<Napi::Uint8Array>(), info[1].As<Napi::Uint8Array>()))->Queue();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("gunzipSync", Napi::Function::New(env, GunzipSync));
  exports.Set("gunzip", Napi::Function::New(env, Gunzip));
  return exports;
}

}  // namespace

NODE_API_MODULE(t3d_gzip, Init)
