// torch.distributed's engine (c10d) for data-parallel training: one process group per process, rendezvous by
// TCPStore (rank 0 serves it), collectives by Gloo on CPU tensors. Calls block until the collective completes or
// the group's timeout passes; a dead peer therefore surfaces as an Error after at most the timeout, never a hang.
// Builds without Gloo headers (a libtorch without them) compile to distAvailable() = false.
#include <cstdlib>
#include <sstream>
#include "common.h"

#if __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>) && __has_include(<gloo/config.h>)
#define T3D_HAS_GLOO 1
#define USE_C10D_GLOO 1  // what a libtorch built with Gloo defines for its own sources; the headers hide the class without it
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
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
#else
  defineOp(env, exports, "distAvailable", [](Args& a) { return a.boolean(false); });
#endif
}

}  // namespace t3d
