// `loom train` and `loom eval`: train a named model on Fashion-MNIST and report accuracy.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <cstdio>

#include "apps/loom/commands.h"
#include "loom/autodiff/graph.h"
#include "loom/base/error.h"
#include "loom/base/rng.h"
#include "loom/base/thread_pool.h"
#include "loom/base/time.h"
#include "loom/data/dataset.h"
#include "loom/models/models.h"
#include "loom/nn/checkpoint.h"
#include "loom/nn/optim.h"
#include "loom/base/request_context.h"
#include "loom/comm/inproc.h"
#include "loom/comm/launch.h"
#include "loom/dist/data_parallel.h"
#if LOOM_HAVE_MPI
#include "loom/comm/mpi.h"
#endif
#include "loom/profile/sampler.h"
#include "loom/profile/trace.h"

namespace loom::cli {
namespace {

struct TrainOptions {
  std::string model = "cnn", dataset = "fashion-mnist", data_dir, save, optimizer = "sgd", schedule = "cosine";
  int epochs = 5, threads = 0;
  int64_t batch_size = 64, limit = 0;
  double lr = 0.05, momentum = 0.9, weight_decay = 0.0;
  uint64_t seed = 1;
  std::string trace, sample_profile;
  int sample_hz = 1000;
  // Data parallelism (loom/dist): --dp ranks over --transport.
  int dp = 1;
  std::string transport = "inproc";
  // Multi-machine (shm/tcp without forking): this process is --rank of --dp, found via --store.
  std::string store, host = "127.0.0.1";
  int rank = -1;
  double fusion_mb = 128, cycle_ms = 1;  // Horovod's defaults
  bool no_response_cache = false;
};

// Accuracy of `model` on a dataset, in eval mode, without recording.
double evaluate(nn::Module& model, const data::Dataset& ds, int64_t batch_size) {
  model.eval();
  autodiff::NoGradGuard ng;
  data::DataLoader loader(ds, batch_size, false, 0, false);
  loader.start_epoch(0);
  int64_t correct = 0;
  while (auto b = loader.next()) {
    Tensor pred = argmax(model(b->inputs), 1);
    correct += sum(cast(eq(pred, b->labels), DType::kI64)).item<int64_t>();
  }
  model.train();
  return static_cast<double>(correct) / static_cast<double>(ds.size());
}

data::Dataset subset(const data::Dataset& ds, int64_t limit) {
  if (limit <= 0 || limit >= ds.size()) return ds;
  return {slice(ds.inputs, 0, 0, limit).contiguous(), slice(ds.labels, 0, 0, limit).contiguous()};
}

void check_dataset(const std::string& name) {
  LOOM_CHECK(name == "fashion-mnist" || name == "mnist", "--dataset: '{}' is not supported (fashion-mnist, mnist)",
             name);
}

// One progress line per epoch: redrawn in place on a terminal, printed every ~25% otherwise.
class Progress {
 public:
  Progress(int epoch, int epochs, int64_t total) : epoch_(epoch), epochs_(epochs), total_(total), tty_(isatty(1)) {
    start_ = now_seconds();
  }
  void update(int64_t done, double loss, bool final = false) {
    const double el = now_seconds() - start_, rate = done / std::max(el, 1e-9);
    const double eta = (total_ - done) / std::max(rate, 1e-9);
    const int quarter = static_cast<int>(4 * done / std::max<int64_t>(total_, 1));
    if (tty_) {
      const int width = 30, filled = static_cast<int>(width * done / std::max<int64_t>(total_, 1));
      std::printf("\repoch %d/%d [%s%s] %lld/%lld  %.0f samples/s  loss %.4f  ETA %.0fs", epoch_, epochs_,
                  std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), rate, loss, eta);
      if (final) std::printf("\n");
      std::fflush(stdout);
    } else if (final || quarter > last_quarter_) {
      last_quarter_ = quarter;
      if (!final)
        std::printf("epoch %d/%d %lld/%lld samples  %.0f samples/s  loss %.4f  ETA %.0fs\n", epoch_, epochs_,
                    static_cast<long long>(done), static_cast<long long>(total_), rate, loss, eta);
      std::fflush(stdout);
    }
  }
  double elapsed() const { return now_seconds() - start_; }

 private:
  int epoch_, epochs_;
  int64_t total_;
  bool tty_;
  double start_;
  int last_quarter_ = 0;
};

// One rank's training (the only one without data parallelism). Rank 0 prints, evaluates and
// saves; every rank computes on its shard of each global batch.
int train_worker(const TrainOptions& o, const data::Dataset& train, const data::Dataset& test,
                 comm::Communicator* comm) {
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  const bool lead = rank == 0;
  manual_seed(o.seed);
  nn::ModulePtr model = models::make(o.model);
  std::unique_ptr<nn::Optimizer> opt;
  if (o.optimizer == "sgd") {
    opt = std::make_unique<nn::SGD>(model->parameters(), nn::SgdOptions{o.lr, o.momentum, o.weight_decay, false});
  } else if (o.optimizer == "adamw") {
    opt = std::make_unique<nn::AdamW>(model->parameters(),
                                      nn::AdamWOptions{o.lr, 0.9, 0.999, 1e-8, o.weight_decay});
  } else {
    LOOM_THROW("--optimizer: '{}' is not one of sgd, adamw", o.optimizer);
  }
  nn::LrSchedule sched{o.schedule, o.lr};
  std::unique_ptr<dist::DataParallel> dp;
  if (comm) {
    dist::DataParallelOptions dpo;
    dpo.fusion_threshold_bytes = static_cast<size_t>(o.fusion_mb * 1024 * 1024);
    dpo.cycle_time_ms = o.cycle_ms;
    dpo.response_cache = !o.no_response_cache;
    dp = std::make_unique<dist::DataParallel>(*comm, model->named_parameters(), dpo);
    dp->broadcast_parameters();
    dp->broadcast(opt->state_tensors());
  }
  if (lead) {
    std::printf("model %s (%lld parameters), %lld training / %lld test samples, batch %lld, %s lr %g, %d threads, seed %llu",
                o.model.c_str(), static_cast<long long>(model->num_parameters()), static_cast<long long>(train.size()),
                static_cast<long long>(test.size()), static_cast<long long>(o.batch_size), o.optimizer.c_str(), o.lr,
                num_threads(), static_cast<unsigned long long>(o.seed));
    if (comm) std::printf(", data parallel over %d ranks (%s)", world, comm->transport().kind());
    std::printf("\n");
  }
  if (!o.trace.empty() && lead) {
    profile::set_thread_name("main");
    profile::start_tracing();
  }
  if (!o.sample_profile.empty() && lead) profile::start_sampling(o.sample_hz);
  data::DataLoader loader(train, o.batch_size, true, o.seed);
  const int64_t steps_per_epoch = loader.num_batches(), total_steps = steps_per_epoch * o.epochs;
  int64_t step = 0;
  double acc = 0;
  for (int e = 0; e < o.epochs; ++e) {
    loader.start_epoch(e);
    Progress bar(e + 1, o.epochs, train.size());
    double loss_sum = 0;  // this rank's shards
    int64_t seen = 0;     // global samples
    double shard_loss_sum = 0;
    int64_t shard_seen = 0;
    while (true) {
      profile::Span step_span("step", "train");
      auto b = loader.next();
      if (!b) break;
      RequestScope request(b->request);
      profile::Span stage("train_step", "stage");  // the batch's second stage (Magpie paths)
      opt->set_lr(sched.lr_at(step++, total_steps));
      // This rank's shard of the global batch; its loss is weighted so that the average of the
      // ranks' gradients is the gradient of the global batch mean (shards may differ by one).
      const int64_t global = b->labels.numel();
      const int64_t lo = global * rank / world, hi = global * (rank + 1) / world;
      Tensor x = world > 1 ? slice(b->inputs, 0, lo, hi) : b->inputs;
      Tensor y = world > 1 ? slice(b->labels, 0, lo, hi) : b->labels;
      Tensor loss, scaled;
      {
        LOOM_TRACE_SCOPE("forward", "train");
        if (hi > lo) loss = cross_entropy((*model)(x), y);
        scaled = world > 1 && hi > lo ? loss * Tensor::scalar(static_cast<double>(hi - lo) * world / global) : loss;
      }
      {
        LOOM_TRACE_SCOPE("backward", "train");
        opt->zero_grad();
        if (dp) {
          dp->backward(scaled);
        } else {
          loss.backward();
        }
      }
      {
        LOOM_TRACE_SCOPE("optimizer", "train");
        opt->step();
      }
      const double l = loss.defined() ? loss.item_double() : 0.0;
      LOOM_CHECK(std::isfinite(l), "training diverged: loss is {} at step {} (lower --lr)", l, step);
      shard_loss_sum += l * static_cast<double>(hi - lo);
      shard_seen += hi - lo;
      seen += global;
      if (lead) bar.update(seen, shard_loss_sum / std::max<int64_t>(shard_seen, 1));
    }
    // The epoch's loss over all ranks' samples.
    double sums[2] = {shard_loss_sum, static_cast<double>(shard_seen)};
    if (comm) comm->allreduce(sums, 2, comm::DType::f64, comm::ReduceOp::sum);
    loss_sum = sums[0] / std::max(sums[1], 1.0);
    if (!lead) continue;
    bar.update(seen, loss_sum, true);
    const double train_time = bar.elapsed();
    acc = evaluate(*model, test, 1000);
    std::printf("epoch %d: train_loss=%.4f test_accuracy=%.4f time=%.1fs samples/s=%.0f\n", e + 1, loss_sum, acc,
                train_time, seen / train_time);
    std::fflush(stdout);
  }
  if (dp && lead) {
    const auto& st = dp->stats();
    std::printf("data parallel: %lld steps, %lld cycles, %lld negotiations, %lld fused allreduces (%.1f MB), "
                "%.2f s in allreduce, %.2f s waited after backward\n",
                static_cast<long long>(st.steps), static_cast<long long>(st.cycles),
                static_cast<long long>(st.negotiations), static_cast<long long>(st.fused_allreduces),
                st.bytes_reduced / 1e6, st.allreduce_s, st.wait_s);
  }
  if (!lead) return 0;
  if (!o.sample_profile.empty()) {
    profile::SampleProfile p = profile::stop_sampling();
    const std::string svg = profile::write_profile(p, o.sample_profile);
    std::printf("%s", p.top_table(15).c_str());
    std::printf("wrote %s and %s\n", o.sample_profile.c_str(), svg.c_str());
  }
  if (!o.trace.empty()) {
    profile::stop_tracing();
    profile::write_trace(o.trace);
    std::printf("wrote trace %s (%zu events; open in ui.perfetto.dev, summarize with loom prof)\n", o.trace.c_str(),
                profile::event_count());
  }
  if (!o.save.empty()) {
    nn::save_safetensors(o.save, model->state_dict(), {{"model", o.model}, {"format", "pt"}});
    std::printf("saved %s\n", o.save.c_str());
  }
  std::printf("test_accuracy=%.4f\n", acc);
  return 0;
}

int run_train(const TrainOptions& o) {
  check_dataset(o.dataset);
  LOOM_CHECK(o.dp >= 1 && o.dp <= 64, "--dp: {} ranks (1..64)", o.dp);
  const bool mpi = o.transport == "mpi";
  if (mpi) {
#if LOOM_HAVE_MPI
    LOOM_CHECK(comm::launched_by_mpirun(), "--transport mpi: start with mpirun -np N {} train ...", "build/bin/loom");
#else
    LOOM_THROW("--transport mpi: this build has no MPI (install libopenmpi-dev and rebuild)");
#endif
  }
  // Threads: each in-process worker runs its ops inline unless --threads says otherwise;
  // processes share the cores.
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (o.threads > 0) {
    set_num_threads(o.threads);
  } else if (mpi) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    set_num_threads(std::max(1, cores / std::max(1, local ? std::atoi(local) : 1)));
  } else if (o.dp > 1 && o.store.empty()) {
    set_num_threads(o.transport == "inproc" ? 1 : std::max(1, cores / o.dp));
  }
  data::Dataset train = subset(data::load_mnist_like(o.data_dir, true), o.limit);
  data::Dataset test = data::load_mnist_like(o.data_dir, false);
  if (mpi) {
#if LOOM_HAVE_MPI
    comm::MpiTransport t;
    comm::Communicator c(t);
    return train_worker(o, train, test, &c);
#endif
  }
  if (!o.store.empty()) {  // one rank of a group started elsewhere (other machines, a launcher)
    LOOM_CHECK(o.rank >= 0 && o.rank < o.dp, "--store needs --rank in [0, --dp), got {}", o.rank);
    LOOM_CHECK(o.transport == "tcp" || o.transport == "shm", "--store works with --transport tcp or shm");
    auto store = comm::open_store(o.store, o.rank);
    auto t = comm::open_transport(o.transport, o.rank, o.dp, store.get(), o.host);
    comm::Communicator c(*t);
    return train_worker(o, train, test, &c);
  }
  if (o.dp == 1) return train_worker(o, train, test, nullptr);
  int rc = 0;
  if (o.transport == "inproc") {
    comm::run_inproc(o.dp, [&](comm::Transport& t) {
      comm::Communicator c(t);
      const int r = train_worker(o, train, test, &c);
      if (t.rank() == 0) rc = r;
    });
    return rc;
  }
  const std::string dir = fmt::format("/tmp/loom-train-store-{}", getpid());
  std::filesystem::remove_all(dir);
  comm::fork_ranks(o.dp, [&](int rank) {
    comm::FileStore store(dir);
    auto t = comm::open_transport(o.transport, rank, o.dp, &store);
    comm::Communicator c(*t);
    const int r = train_worker(o, train, test, &c);
    if (rank == 0) rc = r;
  });
  std::filesystem::remove_all(dir);
  return rc;
}

int run_eval(const std::string& checkpoint, const std::string& model_name, const std::string& dataset,
             const std::string& data_dir, int threads) {
  check_dataset(dataset);
  if (threads > 0) set_num_threads(threads);
  nn::ModulePtr model = models::make(model_name);
  model->load_state_dict(nn::load_safetensors(checkpoint));
  data::Dataset test = data::load_mnist_like(data_dir, false);
  std::printf("test_accuracy=%.4f\n", evaluate(*model, test, 1000));
  return 0;
}

}  // namespace

void add_train(CLI::App& app, Runner& run) {
  auto o = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand("train", "Train a model (mlp, cnn) on Fashion-MNIST; prints test_accuracy=<value>");
  cmd->add_option("--model", o->model, "mlp or cnn")->capture_default_str()->check(CLI::IsMember({"mlp", "cnn"}));
  cmd->add_option("--dataset", o->dataset, "fashion-mnist (or mnist with --data-dir)")->capture_default_str();
  cmd->add_option("--data-dir", o->data_dir, "directory with the IDX files (default: the Debian package's)");
  cmd->add_option("--epochs", o->epochs, "passes over the training set")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--batch-size", o->batch_size, "samples per step")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--lr", o->lr, "learning rate")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--optimizer", o->optimizer, "sgd (momentum) or adamw")->capture_default_str()->check(CLI::IsMember({"sgd", "adamw"}));
  cmd->add_option("--momentum", o->momentum, "SGD momentum")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--weight-decay", o->weight_decay, "weight decay")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--lr-schedule", o->schedule, "constant, step or cosine")->capture_default_str()->check(CLI::IsMember({"constant", "step", "cosine"}));
  cmd->add_option("--threads", o->threads, "worker threads (default: all cores)")->check(CLI::Range(1, 1024));
  cmd->add_option("--seed", o->seed, "seed for initialization and shuffling")->capture_default_str();
  cmd->add_option("--limit", o->limit, "use only the first N training samples (quick runs)")->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--save", o->save, "write the trained weights as safetensors to this path");
  cmd->add_option("--sample-profile", o->sample_profile,
                  "sample every thread's stacks; write folded stacks here and a flame graph beside it (.svg)");
  cmd->add_option("--sample-hz", o->sample_hz, "samples per CPU-second per thread")->capture_default_str()->check(CLI::Range(1, 10000));
  cmd->add_option("--trace", o->trace, "write a Chrome trace (ops, steps, data loading) to this JSON file");
  cmd->add_option("--dp", o->dp, "data-parallel ranks, each on a shard of every batch (Horovod-style)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--transport", o->transport,
                  "how --dp ranks talk: inproc (threads), shm or tcp (processes); mpi: one process per mpirun rank")
      ->capture_default_str()
      ->check(CLI::IsMember({"inproc", "shm", "tcp", "mpi"}));
  cmd->add_option("--store", o->store,
                  "rendezvous for ranks started separately (e.g. on several machines): tcp:HOST:PORT (rank 0 "
                  "serves it) or file:/shared/dir; with --rank and --dp");
  cmd->add_option("--rank", o->rank, "this process's rank, with --store")->check(CLI::Range(0, 63));
  cmd->add_option("--fusion-threshold-mb", o->fusion_mb, "data parallel: tensor fusion buffer (0: no fusion)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 4096.0));
  cmd->add_option("--cycle-time-ms", o->cycle_ms, "data parallel: time between negotiation cycles")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  cmd->add_flag("--no-response-cache", o->no_response_cache,
                "data parallel: negotiate every tensor with rank 0 on every step (Horovod's cache off)");
  cmd->add_option("--host", o->host, "address this rank listens on, with --transport tcp --store")->capture_default_str();
  cmd->callback([o, &run] { run = [o] { return run_train(*o); }; });

  auto ck = std::make_shared<std::string>(), model = std::make_shared<std::string>("cnn"),
       ds = std::make_shared<std::string>("fashion-mnist"), dir = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  auto* ev = app.add_subcommand("eval", "Evaluate a saved checkpoint; prints test_accuracy=<value>");
  ev->add_option("--checkpoint", *ck, "safetensors file written by loom train --save")->required();
  ev->add_option("--model", *model, "mlp or cnn")->capture_default_str()->check(CLI::IsMember({"mlp", "cnn"}));
  ev->add_option("--dataset", *ds, "fashion-mnist")->capture_default_str();
  ev->add_option("--data-dir", *dir, "directory with the IDX files");
  ev->add_option("--threads", *threads, "worker threads")->check(CLI::Range(1, 1024));
  ev->callback([=, &run] { run = [=] { return run_eval(*ck, *model, *ds, *dir, *threads); }; });
}

}  // namespace loom::cli
