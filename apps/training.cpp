#include "training.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <unistd.h>
#include <vector>

#include <kiln/kiln.h>
#include <kiln/optim/adam.h>
#include <kiln/optim/checkpoint.h>
#include <kiln/optim/lr_scheduler.h>
#include <kiln/optim/sgd.h>

#include "models.h"
#include "svg_plot.h"

namespace kiln::apps {

namespace {

using Clock = std::chrono::steady_clock;

// The data-parallel world of this run: one process, unless kiln::dist is initialized (the app runs
// under mpirun). Rank 0 prints and writes the files; every rank trains and evaluates its share.
struct World {
  int rank = 0, size = 1;
  bool root() const { return rank == 0; }
};

World current_world() {
#ifdef KILN_WITH_MPI
  if (dist::is_initialized()) return {dist::rank(), dist::world_size()};
#endif
  return {};
}

// values = the sum over the ranks of each rank's values (in rank order, the same on every rank).
void sum_over_ranks(std::vector<double>& values) {
#ifdef KILN_WITH_MPI
  if (dist::is_initialized())
    dist::all_reduce(values.data(), static_cast<int64_t>(values.size()), dist::ReduceOp::sum);
#else
  (void)values;
#endif
}

// Examples rank, rank + P, rank + 2P, ... of a dataset: one rank's share of the evaluation.
class Strided : public data::Dataset {
 public:
  Strided(const data::Dataset& base, int rank, int size)
      : base_(base), rank_(rank), size_(size),
        count_((base.size() - rank + size - 1) / size) {}
  int64_t size() const override { return count_; }
  data::Example get(int64_t i) const override { return base_.get(at(i)); }
  Shape image_shape() const override { return base_.image_shape(); }
  int64_t get_into(int64_t i, float* image) const override { return base_.get_into(at(i), image); }

 private:
  int64_t at(int64_t i) const {
    KILN_CHECK(i >= 0 && i < count_, "Strided: index ", i, " is out of range for ", count_, " examples");
    return rank_ + i * size_;
  }
  const data::Dataset& base_;
  int64_t rank_, size_, count_;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_duration(double seconds) {
  char buf[32];
  const long s = std::lround(std::max(seconds, 0.0));
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

// Progress: a live line rewritten in place on a terminal, plain lines every few seconds elsewhere.
class Progress {
 public:
  Progress(bool quiet, std::string label)
      : quiet_(quiet), terminal_(::isatty(STDOUT_FILENO) == 1), label_(std::move(label)) {}

  void update(int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss,
              double accuracy, double images_per_second, double eta_seconds) {
    if (quiet_) return;
    const double now = seconds_since(start_);
    if (!terminal_ && now - last_print_ < 10.0 && step != steps) return;
    if (terminal_ && now - last_print_ < 0.2 && step != steps) return;
    last_print_ = now;
    char line[256];
    std::snprintf(line, sizeof line, "%s%sepoch %lld/%lld  step %lld/%lld  loss %.4f  acc %5.1f%%  %.0f img/s  ETA %s",
                  label_.c_str(), label_.empty() ? "" : "  ", static_cast<long long>(epoch),
                  static_cast<long long>(epochs), static_cast<long long>(step),
                  static_cast<long long>(steps), loss, 100 * accuracy, images_per_second,
                  format_duration(eta_seconds).c_str());
    if (terminal_) std::cout << "\r\033[K" << line << std::flush;
    else std::cout << line << "\n" << std::flush;
  }
  void line(const std::string& text) {
    if (quiet_) return;
    if (terminal_) std::cout << "\r\033[K";
    std::cout << text << "\n" << std::flush;
  }

 private:
  bool quiet_, terminal_;
  std::string label_;
  Clock::time_point start_ = Clock::now();
  double last_print_ = -1e9;
};

std::unique_ptr<optim::Optimizer> make_optimizer(const RunConfig& c, const std::vector<Tensor>& params) {
  if (c.optimizer == "sgd")
    return std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = c.lr, .momentum = c.momentum,
                                                                  .weight_decay = c.weight_decay});
  if (c.optimizer == "adam")
    return std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = c.lr, .weight_decay = c.weight_decay});
  KILN_FAIL("optimizer: expected sgd or adam, got '", c.optimizer, "'");
}

// Stepped once per training step.
std::unique_ptr<optim::LRScheduler> make_scheduler(const RunConfig& c, optim::Optimizer& opt,
                                                   int64_t total_steps) {
  if (c.schedule == "none") return nullptr;
  if (c.schedule == "cosine")
    return std::make_unique<optim::CosineAnnealingLR>(opt, std::max<int64_t>(total_steps, 1));
  if (c.schedule == "step")
    return std::make_unique<optim::MultiStepLR>(
        opt, std::vector<int64_t>{total_steps / 2, total_steps * 3 / 4}, 0.1);
  KILN_FAIL("schedule: expected none, cosine or step, got '", c.schedule, "'");
}

std::shared_ptr<const data::Transform> train_transform(const RunConfig& c) {
  if (c.dataset == "cifar10") {
    if (!c.augment) return std::make_shared<data::Normalize>(data::kCifar10Mean, data::kCifar10Std);
    return data::cifar10_train_transform();
  }
  // Fashion-MNIST: 28x28 padded to 32x32, so the same models serve both datasets.
  return data::compose(data::Pad(2), data::Normalize(data::kFashionMnistMean, data::kFashionMnistStd));
}

std::shared_ptr<const data::Transform> test_transform(const RunConfig& c) {
  if (c.dataset == "cifar10") return data::cifar10_test_transform();
  return data::compose(data::Pad(2), data::Normalize(data::kFashionMnistMean, data::kFashionMnistStd));
}

struct Evaluation {
  double loss = 0, accuracy = 0;
};

// Every rank evaluates its share of the test set (eval-mode normalization treats each image on
// its own), and the sums are combined.
Evaluation evaluate(nn::Module& model, const data::Dataset& full_test, const RunConfig& c,
                    const World& world) {
  model.eval();
  NoGradGuard no_grad;
  Strided share(full_test, world.rank, world.size);
  const data::Dataset& test = world.size > 1 ? share : full_test;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  std::optional<data::DataLoader> loader;  // none for a rank with no test images
  if (test.size() > 0)
    loader.emplace(test, data::LoaderOptions{.batch_size = 256, .shuffle = false, .seed = c.seed,
                                             .transform = test_transform(c)});
  while (loader) {
    std::optional<data::Batch> b = loader->next();
    if (!b) break;
    Tensor logits = model.forward(b->images);
    loss_sum += nn::functional::cross_entropy(logits, b->labels, {.reduction = nn::Reduction::sum}).item<double>();
    Tensor predicted = logits.argmax(1);
    const auto p = predicted.to_vector<int64_t>(), l = b->labels.to_vector<int64_t>();
    for (size_t i = 0; i < p.size(); ++i) correct += p[i] == l[i];
    seen += static_cast<int64_t>(p.size());
  }
  model.train();
  std::vector<double> sums = {loss_sum, static_cast<double>(correct), static_cast<double>(seen)};
  sum_over_ranks(sums);
  return {sums[2] > 0 ? sums[0] / sums[2] : 0.0, sums[2] > 0 ? sums[1] / sums[2] : 0.0};
}

void write_curves(const std::string& path, const std::vector<EpochMetrics>& epochs, const RunConfig& c,
                  const World& world) {
  LineChart chart;
  chart.title = c.model + " + " + c.norm + ", batch " + std::to_string(c.batch) +
                (world.size > 1 ? " per worker x " + std::to_string(world.size) + " workers" : "") +
                ": error by epoch";
  chart.x_label = "epoch";
  chart.y_label = "error (%)";
  chart.y_from_zero = true;
  Series train{"train error", {}, {}}, test{"test error", {}, {}};
  for (const EpochMetrics& m : epochs) {
    train.x.push_back(static_cast<double>(m.epoch));
    train.y.push_back(100 * (1 - m.train_accuracy));
    test.x.push_back(static_cast<double>(m.epoch));
    test.y.push_back(100 * (1 - m.test_accuracy));
  }
  chart.series = {train, test};
  write_svg(path, chart);
}

}  // namespace

std::string metrics_csv(const std::vector<EpochMetrics>& epochs) {
  std::ostringstream out;
  out << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second,seconds\n";
  char buf[256];
  for (const EpochMetrics& m : epochs) {
    std::snprintf(buf, sizeof buf, "%lld,%.6f,%.6f,%.6f,%.6f,%.1f,%.2f\n",
                  static_cast<long long>(m.epoch), m.train_loss, m.train_accuracy, m.test_loss,
                  m.test_accuracy, m.images_per_second, m.seconds);
    out << buf;
  }
  return out.str();
}

std::vector<EpochMetrics> parse_metrics_csv(const std::string& text) {
  std::vector<EpochMetrics> out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    EpochMetrics m;
    long long epoch = 0;
    const int n = std::sscanf(line.c_str(), "%lld,%lf,%lf,%lf,%lf,%lf,%lf", &epoch, &m.train_loss,
                              &m.train_accuracy, &m.test_loss, &m.test_accuracy,
                              &m.images_per_second, &m.seconds);
    KILN_CHECK(n == 7, "metrics: expected 7 comma-separated fields, got '", line, "'");
    m.epoch = epoch;
    out.push_back(m);
  }
  return out;
}

RunResult train_run(const RunConfig& c, const data::Dataset& train, const data::Dataset& test) {
  KILN_CHECK(c.batch >= 1, "batch: expected at least 1, got ", c.batch);
  KILN_CHECK(c.epochs >= 1, "epochs: expected at least 1, got ", c.epochs);
  KILN_CHECK(c.lr > 0, "lr: expected a positive learning rate, got ", c.lr);
  const World world = current_world();
  if (world.root()) std::filesystem::create_directories(c.out);
  const std::string checkpoint_path = c.out + "/checkpoint.safetensors";

  // Everything random flows from the seed: the initial weights (default generator), the shuffle
  // and the augmentation (the loader's seed).
  manual_seed(c.seed);
  const int64_t channels = train.image_shape()[0];
  auto model = make_vgg(vgg_blocks(c.model), c.norm, c.groups, channels, 10);
  model->train();
#ifdef KILN_WITH_MPI
  // Several ranks: rank 0's weights to all, and gradients averaged before every step.
  std::unique_ptr<dist::GradientAverager> averager;
  if (world.size > 1) averager = std::make_unique<dist::GradientAverager>(*model);
#endif
  auto opt = make_optimizer(c, model->parameters());
  // Several ranks: each loads its shard of every epoch's shuffle, batches of c.batch from it.
  std::shared_ptr<const data::DistributedSampler> sampler;
  if (world.size > 1)
    sampler = std::make_shared<data::DistributedSampler>(
        train, data::DistributedSamplerOptions{.num_replicas = world.size, .rank = world.rank,
                                               .shuffle = true, .seed = c.seed});
  data::DataLoader loader(train, data::LoaderOptions{.batch_size = c.batch, .shuffle = !sampler,
                                                     .sampler = sampler, .drop_last = true,
                                                     .seed = c.seed, .transform = train_transform(c)});
  KILN_CHECK(loader.num_batches() > 0, "batch: ", c.batch, " is larger than the ", train.size(),
             " training images");
  const int64_t steps_per_epoch = loader.num_batches();
  const int64_t total_steps = steps_per_epoch * c.epochs;
  auto scheduler = make_scheduler(c, *opt, total_steps);

  RunResult result;
  // Running sums of the epoch in progress, saved with mid-epoch checkpoints. Each rank sums its
  // own images; the totals over the ranks are what is saved and reported.
  double epoch_loss = 0, epoch_seconds = 0;
  int64_t epoch_correct = 0, epoch_seen = 0;
  auto epoch_totals = [&] {
    std::vector<double> sums = {epoch_loss, static_cast<double>(epoch_correct),
                                static_cast<double>(epoch_seen)};
    sum_over_ranks(sums);
    return sums;  // loss, correct, seen
  };

  optim::TrainingState state;
  state.model = model.get();
  state.optimizer = opt.get();
  state.scheduler = scheduler.get();
  // Every rank calls it at the same step; rank 0 writes.
  auto save = [&](int64_t epoch, int64_t step) {
    const std::vector<double> totals = epoch_totals();
    if (!world.root()) return;
    const data::LoaderState ls = loader.state();
    state.epoch = epoch;
    state.step = step;
    state.data_position = {static_cast<int64_t>(ls.seed), ls.epoch, ls.batch};
    char loss[64];
    std::snprintf(loss, sizeof loss, "%.17g", totals[0]);
    state.extra = {{"metrics", metrics_csv(result.epochs)},
                   {"epoch_loss", loss},
                   {"epoch_seconds", std::to_string(epoch_seconds)},
                   {"epoch_correct", std::to_string(static_cast<int64_t>(totals[1]))},
                   {"epoch_seen", std::to_string(static_cast<int64_t>(totals[2]))},
                   {"world_size", std::to_string(world.size)},
                   {"config", c.model + " " + c.norm + " batch " + std::to_string(c.batch)}};
    optim::save_checkpoint(checkpoint_path, state);
  };

  int64_t start_epoch = 0, step = 0;
  Progress progress(c.quiet || !world.root(), c.label);
  if (c.resume && std::filesystem::exists(checkpoint_path)) {
    // The data position counts batches of each rank's shard: it means the same only with as many
    // ranks (checked first, as the other settings follow from it).
    const Metadata saved = read_safetensors(checkpoint_path).metadata;
    const auto saved_world = saved.find("extra.world_size");
    const int64_t saved_size = saved_world == saved.end() ? 1 : std::stoll(saved_world->second);
    KILN_CHECK(saved_size == world.size, checkpoint_path, ": written by a run of ", saved_size,
               " process(es), resumed with ", world.size, "; resume with the same number (mpirun -np ",
               saved_size, ") to continue the same data order");
    // Every rank loads the same file: the same weights, optimizer state and data position.
    optim::load_checkpoint(checkpoint_path, state);
    KILN_CHECK(state.data_position.size() == 3, checkpoint_path,
               ": data_position: expected 3 values (seed, epoch, batch), got ", state.data_position.size());
    loader.load_state(data::LoaderState{static_cast<uint64_t>(state.data_position[0]),
                                        state.data_position[1], state.data_position[2]});
    result.epochs = parse_metrics_csv(state.extra.at("metrics"));
    epoch_seconds = std::stod(state.extra.at("epoch_seconds"));
    if (world.root()) {  // the totals so far, counted once
      epoch_loss = std::stod(state.extra.at("epoch_loss"));
      epoch_correct = std::stoll(state.extra.at("epoch_correct"));
      epoch_seen = std::stoll(state.extra.at("epoch_seen"));
    }
    start_epoch = state.epoch;
    step = state.step;
    progress.line("resumed from " + checkpoint_path + " at epoch " + std::to_string(start_epoch + 1) +
                  ", step " + std::to_string(step));
  }

  const Clock::time_point run_start = Clock::now();
  int64_t images_this_session = 0;  // by this rank
  for (int64_t epoch = start_epoch; epoch < c.epochs; ++epoch) {
    Clock::time_point epoch_start = Clock::now();
    const double seconds_before = epoch_seconds;
    while (loader.epoch() == epoch) {
      std::optional<data::Batch> batch = loader.next();
      if (!batch) break;
      opt->zero_grad();
      Tensor logits = model->forward(batch->images);
      Tensor loss = nn::functional::cross_entropy(logits, batch->labels);
      loss.backward();
#ifdef KILN_WITH_MPI
      if (averager) averager->average();
#endif
      opt->step();
      if (scheduler) scheduler->step();
      ++step;
      const int64_t n = batch->labels.numel();
      images_this_session += n;
      epoch_loss += loss.item<double>() * static_cast<double>(n);
      const auto predicted = logits.argmax(1).to_vector<int64_t>();
      const auto labels = batch->labels.to_vector<int64_t>();
      for (size_t i = 0; i < predicted.size(); ++i) epoch_correct += predicted[i] == labels[i];
      epoch_seen += n;
      epoch_seconds = seconds_before + seconds_since(epoch_start);
      // Rank 0's view: its own loss and accuracy, and its rate times the ranks (they run in step).
      const double rate = static_cast<double>(images_this_session * world.size) /
                          std::max(seconds_since(run_start), 1e-9);
      const double eta = static_cast<double>((total_steps - step) * c.batch * world.size) /
                         std::max(rate, 1e-9);
      progress.update(epoch + 1, c.epochs, step - epoch * steps_per_epoch, steps_per_epoch,
                      epoch_loss / static_cast<double>(epoch_seen),
                      static_cast<double>(epoch_correct) / static_cast<double>(epoch_seen), rate, eta);
      if (c.checkpoint_steps > 0 && step % c.checkpoint_steps == 0 && loader.epoch() == epoch)
        save(epoch, step);
      if (c.stop_after_steps > 0 && step >= c.stop_after_steps) {
        save(epoch, step);
        progress.line("stopped after " + std::to_string(step) + " steps; --resume continues from " +
                      checkpoint_path);
        result.stopped_early = true;
        return result;
      }
    }
    const Evaluation eval = evaluate(*model, test, c, world);
    const std::vector<double> totals = epoch_totals();
    const double seen = totals[2];
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.train_loss = seen > 0 ? totals[0] / seen : 0;
    m.train_accuracy = seen > 0 ? totals[1] / seen : 0;
    m.test_loss = eval.loss;
    m.test_accuracy = eval.accuracy;
    m.seconds = epoch_seconds;
    m.images_per_second = epoch_seconds > 0 ? seen / epoch_seconds : 0;
    result.epochs.push_back(m);
    epoch_loss = 0;
    epoch_seconds = 0;
    epoch_correct = 0;
    epoch_seen = 0;
    save(epoch + 1, step);
    if (world.root()) {
      write_file_atomic(c.out + "/metrics.csv", metrics_csv(result.epochs));
      write_curves(c.out + "/curves.svg", result.epochs, c, world);
    }
    char line[256];
    std::snprintf(line, sizeof line,
                  "%s%sepoch %lld/%lld  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.0f img/s  %.0fs",
                  c.label.c_str(), c.label.empty() ? "" : "  ", static_cast<long long>(m.epoch),
                  static_cast<long long>(c.epochs), m.train_loss, 100 * m.train_accuracy,
                  m.test_loss, 100 * m.test_accuracy, m.images_per_second, m.seconds);
    progress.line(line);
  }
  if (result.epochs.size() == static_cast<size_t>(c.epochs) && start_epoch == c.epochs && world.root()) {
    // A finished run resumed: nothing to train, the metrics came from the checkpoint.
    write_file_atomic(c.out + "/metrics.csv", metrics_csv(result.epochs));
    write_curves(c.out + "/curves.svg", result.epochs, c, world);
  }
  return result;
}

}  // namespace kiln::apps
