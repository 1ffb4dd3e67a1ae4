// `loom train` and `loom eval`: train a named model on Fashion-MNIST and report accuracy.
#include <unistd.h>

#include <cmath>
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

int run_train(const TrainOptions& o) {
  check_dataset(o.dataset);
  if (o.threads > 0) set_num_threads(o.threads);
  manual_seed(o.seed);
  data::Dataset train = subset(data::load_mnist_like(o.data_dir, true), o.limit);
  data::Dataset test = data::load_mnist_like(o.data_dir, false);
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
  std::printf("model %s (%lld parameters), %lld training / %lld test samples, batch %lld, %s lr %g, %d threads, seed %llu\n",
              o.model.c_str(), static_cast<long long>(model->num_parameters()), static_cast<long long>(train.size()),
              static_cast<long long>(test.size()), static_cast<long long>(o.batch_size), o.optimizer.c_str(), o.lr,
              num_threads(), static_cast<unsigned long long>(o.seed));
  if (!o.trace.empty()) {
    profile::set_thread_name("main");
    profile::start_tracing();
  }
  if (!o.sample_profile.empty()) profile::start_sampling(o.sample_hz);
  data::DataLoader loader(train, o.batch_size, true, o.seed);
  const int64_t steps_per_epoch = loader.num_batches(), total_steps = steps_per_epoch * o.epochs;
  int64_t step = 0;
  double acc = 0;
  for (int e = 0; e < o.epochs; ++e) {
    loader.start_epoch(e);
    Progress bar(e + 1, o.epochs, train.size());
    double loss_sum = 0;
    int64_t seen = 0;
    while (true) {
      profile::Span step_span("step", "train");
      auto b = loader.next();
      if (!b) break;
      RequestScope request(b->request);
      profile::Span stage("train_step", "stage");  // the batch's second stage (Magpie paths)
      opt->set_lr(sched.lr_at(step++, total_steps));
      Tensor loss;
      {
        LOOM_TRACE_SCOPE("forward", "train");
        loss = cross_entropy((*model)(b->inputs), b->labels);
      }
      {
        LOOM_TRACE_SCOPE("backward", "train");
        opt->zero_grad();
        loss.backward();
      }
      {
        LOOM_TRACE_SCOPE("optimizer", "train");
        opt->step();
      }
      const double l = loss.item_double();
      LOOM_CHECK(std::isfinite(l), "training diverged: loss is {} at step {} (lower --lr)", l, step);
      loss_sum += l * b->labels.numel();
      seen += b->labels.numel();
      bar.update(seen, loss_sum / seen);
    }
    bar.update(seen, loss_sum / seen, true);
    const double train_time = bar.elapsed();
    acc = evaluate(*model, test, 1000);
    std::printf("epoch %d: train_loss=%.4f test_accuracy=%.4f time=%.1fs samples/s=%.0f\n", e + 1, loss_sum / seen,
                acc, train_time, seen / train_time);
    std::fflush(stdout);
  }
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
