// torch.distributed's engine (c10d) for data-parallel training: one process group per process, rendezvous by
// TCPStore (rank 0 serves it), collectives by Gloo on CPU tensors. Calls block until the collective completes or
// the group's timeout passes; a dead peer therefore surfaces as an Error after at most the timeout, never a hang.
// Builds without Gloo headers (a libtorch without them) compile to distAvailable() = false.
#include <cstdlib>
#include <map>
#include <sstream>
#include "common.h"

#if __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>) && __has_include(<gloo/config.h>)
#define T3D_HAS_GLOO 1
#define USE_C10D_GLOO 1  // what a libtorch built with Gloo defines for its own sources; the headers hide the class without it
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#endif

namespace t3d {

#ifdef T3D_HAS_GLOO
namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0;
  int size = 1;
};
std::unique_ptr<Group> group;

Group& current() {
  if (!group) throw std::runtime_error("distributed: no process group; call init first");
  return *group;
}

c10d::ReduceOp reduceOp(const std::string& op) {
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  throw ArgError("distributed: reduce op must be sum, max, min or product, not '" + op + "'");
}

void checkCpu(const std::vector<at::Tensor>& ts) {
  for (const auto& t : ts) {
    if (!t.device().is_cpu()) throw ArgError("distributed: the Gloo backend takes CPU tensors");
    if (!t.is_contiguous()) throw ArgError("distributed: collectives need contiguous tensors");
  }
}

// The gradient allReduce of data-parallel training, overlapped with backward as DDP's Reducer does it: parameters
// sit in fixed buckets (the caller's order, about backward's order; the first bucket small so communication starts
// early). A hook after each parameter's gradient accumulation counts it in; when every parameter of a bucket that
// was used last step is in, the bucket's gradients are copied into one flat buffer and its allreduce starts on
// Gloo's threads while backward goes on. Buckets start in index order on every rank, as c10d requires the same
// collective order everywhere. wait() starts the rest and waits; a parameter whose gradient arrived after its bucket
// had started makes it return true, and the caller agrees across ranks whether to redo the reduction.
struct Reducer {
  struct Bucket {
    std::vector<size_t> members;
    at::Tensor flat;
    size_t pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<at::Tensor> params;
  // shared_ptr<Node> in libtorch 1.x and early 2.x, intrusive_ptr<Node> in later 2.x
  std::vector<decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()))> accumulators;
  std::vector<uintptr_t> hookKeys;
  std::vector<size_t> bucketOf;
  std::vector<bool> used;  // had a gradient at the last wait(): the parameters a bucket waits for
  std::vector<Bucket> buckets;
  size_t next = 0;  // the first bucket not started
  bool armed = false, late = false;
  std::mutex mu;

  ~Reducer() {
    for (size_t i = 0; i < accumulators.size(); ++i) accumulators[i]->del_post_hook(hookKeys[i]);
  }
  void start(size_t k) {
    at::NoGradGuard noGrad;
    Bucket& b = buckets[k];
    int64_t at = 0;
    for (size_t i : b.members) {
      const int64_t n = params[i].numel();
      at::Tensor slice = b.flat.narrow(0, at, n);
      const at::Tensor& g = params[i].grad();
      if (g.defined()) slice.copy_(g.reshape(-1)); else slice.zero_();
      at += n;
    }
    std::vector<at::Tensor> ts{b.flat};
    b.work = current().pg->allreduce(ts);
  }
  void arm() {
    std::lock_guard<std::mutex> lock(mu);
    for (Bucket& b : buckets) {
      b.pending = 0;
      for (size_t i : b.members) b.pending += used[i] ? 1 : 0;
      b.work.reset();
    }
    next = 0;
    late = false;
    armed = true;
  }
  void ready(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed) return;
    const size_t k = bucketOf[i];
    if (k < next) { late = true; return; }
    // a parameter unused last step is not waited for; if it has a gradient by the time its bucket starts, it goes in
    if (used[i] && buckets[k].pending > 0) buckets[k].pending -= 1;
    while (next < buckets.size() && buckets[next].pending == 0) start(next++);
  }
  bool wait() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!armed) throw std::runtime_error("distributed: reducer wait() without arm() before the backward pass");
      while (next < buckets.size()) start(next++);
      armed = false;
    }
    for (Bucket& b : buckets) b.work->wait();
    for (size_t i = 0; i < params.size(); ++i) used[i] = params[i].grad().defined();
    return late;
  }
  void writeBack(bool redo) {
    at::NoGradGuard noGrad;
    if (redo) for (size_t k = 0; k < buckets.size(); ++k) { start(k); buckets[k].work->wait(); }
    for (Bucket& b : buckets) {
      int64_t at = 0;
      for (size_t i : b.members) {
        at::Tensor g = params[i].grad();
        const int64_t n = params[i].numel();
        if (g.defined()) g.copy_(b.flat.narrow(0, at, n).view(g.sizes()));
        at += n;
      }
    }
  }
};
std::map<int64_t, std::unique_ptr<Reducer>> reducers;
int64_t nextReducer = 1;

Reducer& reducerOf(int64_t id) {
  auto it = reducers.find(id);
  if (it == reducers.end()) throw std::runtime_error("distributed: no such gradient reducer (disposed?)");
  return *it->second;
}

}  // namespace
#endif

void initDistributed(Napi::Env env, Napi::Object exports) {
#ifdef T3D_HAS_GLOO
  defineOp(env, exports, "distAvailable", [](Args& a) { return a.boolean(true); });
  // init(rank, worldSize, host, port, timeoutMs): rank 0 listens on host:port, the others connect to it
  defineOp(env, exports, "distInit", [](Args& a) {
    if (group) throw std::runtime_error("distributed: a process group exists already; destroy it first");
    const int rank = static_cast<int>(a.i(0)), size = static_cast<int>(a.i(1));
    if (size < 1 || rank < 0 || rank >= size) throw ArgError("distributed: need 0 <= rank < worldSize");
    const std::string host = a.s(2);
    const int64_t port = a.i(3);
    if (port < 1 || port > 65535) throw ArgError("distributed: port must be 1..65535");
    const std::chrono::milliseconds timeout(a.i(4));
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = size;
    so.waitWorkers = true;
    so.timeout = timeout;
    auto g = std::make_unique<Group>();
    g->store = c10::make_intrusive<c10d::TCPStore>(host, so);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // the local interface for Gloo's pairs, as PyTorch chooses it: GLOO_SOCKET_IFNAME (comma-separated) when set;
    // loopback for a single-machine group; otherwise the address this machine's hostname resolves to
    const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifnames && *ifnames) {
      std::stringstream list(ifnames);
      for (std::string name; std::getline(list, name, ',');)
        if (!name.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    } else if (host == "localhost" || host.rfind("127.", 0) == 0) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    opts->threads = 2;
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, size, opts);
    g->rank = rank;
    g->size = size;
    group = std::move(g);
    return a.undef();
  });
  defineOp(env, exports, "distDestroy", [](Args& a) {
    reducers.clear();
    group.reset();
    return a.undef();
  });
  // allReduce(tensor, op): in place, every rank ends with the reduction over ranks (one tensor: c10d's lists are
  // one tensor per device, reduced together)
  defineOp(env, exports, "distAllReduce", [](Args& a) {
    std::vector<at::Tensor> ts{a.t(0)};
    checkCpu(ts);
    c10d::AllreduceOptions o;
    o.reduceOp = reduceOp(a.s(1));
    current().pg->allreduce(ts, o)->wait();
    return a.undef();
  });
  // broadcast(tensor, root): in place, every rank ends with root's values
  defineOp(env, exports, "distBroadcast", [](Args& a) {
    std::vector<at::Tensor> ts{a.t(0)};
    checkCpu(ts);
    c10d::BroadcastOptions o;
    o.rootRank = a.i(1);
    if (o.rootRank < 0 || o.rootRank >= current().size) throw ArgError("distributed: broadcast root must be a rank of the group");
    current().pg->broadcast(ts, o)->wait();
    return a.undef();
  });
  // allGather(tensor) -> one new tensor per rank, rank order
  defineOp(env, exports, "distAllGather", [](Args& a) {
    std::vector<at::Tensor> in{a.t(0).contiguous()};
    checkCpu(in);
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < current().size; ++r) out[0].push_back(at::empty_like(in[0]));
    current().pg->allgather(out, in)->wait();
    return a.ret(out[0]);
  });
  defineOp(env, exports, "distBarrier", [](Args& a) {
    // a barrier as an all-reduce of one element: Gloo's barrier has no timeout of its own in every version
    std::vector<at::Tensor> ts{at::zeros({1})};
    current().pg->allreduce(ts)->wait();
    return a.undef();
  });
  // reducerCreate(params, firstBucketBytes, bucketBytes) -> id: buckets in the given order, hooks registered
  defineOp(env, exports, "distReducerCreate", [](Args& a) {
    current();
    auto r = std::make_unique<Reducer>();
    r->params = a.tl(0);
    const int64_t first = a.i(1), cap = a.i(2);
    if (first < 1 || cap < 1) throw ArgError("distributed: bucket sizes must be positive");
    int64_t filled = 0;
    for (size_t i = 0; i < r->params.size(); ++i) {
      const at::Tensor& p = r->params[i];
      if (!p.requires_grad() || !p.is_leaf()) throw ArgError("distributed: a reducer takes leaf parameters that require grad");
      if (!p.device().is_cpu()) throw ArgError("distributed: the Gloo backend takes CPU tensors");
      const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
      // a new bucket when the current one would overflow (bucket 0's limit is `first`) or the dtype changes
      const int64_t limit = r->buckets.size() <= 1 ? first : cap;
      const bool sameType = !r->buckets.empty() && r->params[r->buckets.back().members.front()].scalar_type() == p.scalar_type();
      if (!sameType || (filled > 0 && filled + bytes > limit)) {
        r->buckets.emplace_back();
        filled = 0;
      }
      r->buckets.back().members.push_back(i);
      r->bucketOf.push_back(r->buckets.size() - 1);
      filled += bytes;
    }
    for (auto& b : r->buckets) {
      int64_t n = 0;
      for (size_t i : b.members) n += r->params[i].numel();
      b.flat = at::empty({n}, r->params[b.members.front()].options().requires_grad(false));
    }
    r->used.assign(r->params.size(), true);
    Reducer* raw = r.get();
    for (size_t i = 0; i < r->params.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(r->params[i]);
      r->hookKeys.push_back(acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [raw, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
            raw->ready(i);
            return outputs;
          })));
      r->accumulators.push_back(std::move(acc));
    }
    const int64_t id = nextReducer++;
    const double buckets = static_cast<double>(r->buckets.size());
    reducers[id] = std::move(r);
    Napi::Array res = Napi::Array::New(a.env(), 2);
    res.Set(0u, Napi::Number::New(a.env(), static_cast<double>(id)));
    res.Set(1u, Napi::Number::New(a.env(), buckets));
    return static_cast<Napi::Value>(res);
  });
  defineOp(env, exports, "distReducerArm", [](Args& a) {
    reducerOf(a.i(0)).arm();
    return a.undef();
  });
  defineOp(env, exports, "distReducerWait", [](Args& a) { return a.boolean(reducerOf(a.i(0)).wait()); });
  defineOp(env, exports, "distReducerWriteBack", [](Args& a) {
    reducerOf(a.i(0)).writeBack(a.b(1));
    return a.undef();
  });
  defineOp(env, exports, "distReducerDispose", [](Args& a) {
    reducers.erase(a.i(0));
    return a.undef();
  });
#else
  defineOp(env, exports, "distAvailable", [](Args& a) { return a.boolean(false); });
#endif
}

}  // namespace t3d
