// kiln-cifar10: trains the VGG models of the benchmark on CIFAR-10 (or Fashion-MNIST) with a
// choice of normalization, and sweeps norms against batch sizes to show what the Group
// Normalization paper's Figure 1 shows: BatchNorm degrades on tiny batches, GroupNorm does not.
//
//   kiln-cifar10 --data data/cifar10 --norm gn --batch 8 --epochs 3 --out runs/gn-b8
//   kiln-cifar10 --dataset fashion-mnist --sweep 32,16,8,4,2 --epochs 2 --out runs/sweep
//   mpirun -np 2 kiln-cifar10 --norm syncbn --batch 4 ...     data-parallel: --batch per worker
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <kiln/kiln.h>

#include "models.h"
#include "svg_plot.h"
#include "training.h"

#ifdef KILN_WITH_MPI
#include <mpi.h>
#endif

using namespace kiln;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string dataset = "cifar10";
  std::string data_dir;
  std::string model = "vgg8";
  std::string norm = "gn";
  int64_t groups = 32;
  int64_t batch = 32;
  int64_t epochs = 3;
  std::string optimizer = "sgd";
  double base_lr = -1;  // set from the optimizer's default when not given
  bool no_lr_scaling = false;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  std::string schedule = "cosine";
  int threads = 0;
  uint64_t seed = 0;
  int64_t limit_train = 0, limit_test = 0;
  std::string out = "runs/kiln-cifar10";
  bool resume = false;
  int64_t checkpoint_steps = 0;
  int64_t stop_after_steps = 0;
  int64_t cifar_records = 10000;
  std::string sweep;
  std::string sweep_norms = "gn,bn";
  bool no_augment = false;
  // Data-parallel under mpirun: this process's rank and the number of processes.
  int rank = 0, world_size = 1;
  bool root() const { return rank == 0; }
};

// Under an MPI launcher, kiln::dist for the life of main: one rank per process.
class DistributedSession {
 public:
  DistributedSession(int& argc, char**& argv) {
#ifdef KILN_WITH_MPI
    if (dist::launched_by_mpi()) {
      dist::init(&argc, &argv);
      rank = dist::rank();
      world_size = dist::world_size();
      local_world_size = dist::local_world_size();
    }
#else
    (void)argc, (void)argv;
#endif
  }
  ~DistributedSession() {
#ifdef KILN_WITH_MPI
    try {
      dist::finalize();
    } catch (const Error&) {
    }
#endif
  }
  /// Ends every rank: one that failed alone would leave the others waiting in a collective.
  [[noreturn]] void abort_all(int code) {
#ifdef KILN_WITH_MPI
    if (world_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    std::exit(code);
  }
  int rank = 0, world_size = 1, local_world_size = 1;
};

// A dataset restricted to its first `limit` examples.
class Subset : public data::Dataset {
 public:
  Subset(const data::Dataset& base, int64_t limit) : base_(base), size_(std::min(limit, base.size())) {}
  int64_t size() const override { return size_; }
  data::Example get(int64_t i) const override {
    KILN_CHECK(i >= 0 && i < size_, "Subset: index ", i, " is out of range for ", size_, " examples");
    return base_.get(i);
  }
  Shape image_shape() const override { return base_.image_shape(); }
  int64_t get_into(int64_t i, float* image) const override {
    KILN_CHECK(i >= 0 && i < size_, "Subset: index ", i, " is out of range for ", size_, " examples");
    return base_.get_into(i, image);
  }
  std::vector<std::string> classes() const override { return base_.classes(); }

 private:
  const data::Dataset& base_;
  int64_t size_;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Flag checks whose messages say what was expected and what was got ("--batch: expected an
// integer >= 1, got 'abc'"). CLI11's PositiveNumber would say "Value abc not in range 0.000000 to"
// followed by the largest double written out in full, and nothing about integers.
CLI::Validator integer_at_least(int64_t lo) {
  const std::string what = "an integer >= " + std::to_string(lo);
  return CLI::Validator(
      [lo, what](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long value = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE || value < lo)
          return "expected " + what + ", got '" + text + "'";
        return {};
      },
      lo == 1 ? "POSITIVE" : lo == 0 ? "NONNEGATIVE" : ">= " + std::to_string(lo));
}

// A finite number in [lo, hi], or in (lo, hi] when lo_open. `what` describes it in messages,
// `name` in the usage.
CLI::Validator number_in(double lo, double hi, bool lo_open, const std::string& what,
                         const std::string& name) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        const bool ok = !text.empty() && *end == '\0' && std::isfinite(value) &&
                        (lo_open ? value > lo : value >= lo) && value <= hi;
        return ok ? std::string() : "expected " + what + ", got '" + text + "'";
      },
      name);
}

// Where the data may be, in the order tried.
std::vector<std::string> candidate_dirs(const Options& o) {
  if (!o.data_dir.empty()) return {o.data_dir};
  if (o.dataset == "cifar10") return {"data/cifar10", "data", "."};
  return {"/usr/share/datasets/fashion-mnist", "data/fashion-mnist"};
}

struct LoadedData {
  std::unique_ptr<data::Dataset> train, test;
  std::string where;
};

// Loads both splits, or prints where it looked and how to get the data, and returns nothing.
std::optional<LoadedData> load_data(const Options& o) {
  std::vector<std::string> tried;
  // bad_data: the first reader error about the data itself, not about files that are not there
  // (the readers' "found no ..." and "found neither ..." errors).
  std::string last_error, bad_data;
  for (const std::string& dir : candidate_dirs(o)) {
    tried.push_back(dir);
    if (!fs::exists(dir)) continue;
    try {
      LoadedData d;
      if (o.dataset == "cifar10") {
        const data::CIFAR10Options options{.records_per_file = o.cifar_records};
        d.train = std::make_unique<data::CIFAR10>(dir, data::Split::Train, options);
        d.test = std::make_unique<data::CIFAR10>(dir, data::Split::Test, options);
      } else {
        d.train = std::make_unique<data::FashionMNIST>(dir, data::Split::Train);
        d.test = std::make_unique<data::FashionMNIST>(dir, data::Split::Test);
      }
      d.where = dir;
      return d;
    } catch (const FileNotFoundError& e) {
      last_error = e.what();
    } catch (const Error& e) {
      last_error = e.what();
      if (bad_data.empty()) bad_data = last_error;
    }
  }
  if (!o.root()) return std::nullopt;  // every rank looked; rank 0 says so
  const char* name = o.dataset == "cifar10" ? "CIFAR-10" : "Fashion-MNIST";
  // Files that are there but hold bad data: the reader's error is the line that matters.
  if (!bad_data.empty()) {
    std::cerr << "kiln-cifar10: cannot read the " << name << " data: " << bad_data << "\n  Looked in:";
  } else {
    std::cerr << "kiln-cifar10: no " << name << " data found. Looked in:";
  }
  for (const std::string& t : tried) std::cerr << " " << t;
  std::cerr << "\n";
  if (bad_data.empty() && !last_error.empty()) std::cerr << "  last error: " << last_error << "\n";
  if (o.dataset == "cifar10") {
    std::cerr << "  Get CIFAR-10 (binary version, 170 MB) with:  scripts/get-cifar10.sh data/cifar10\n"
              << "  Or train on Fashion-MNIST from the Debian package instead:\n"
              << "    sudo apt-get install dataset-fashion-mnist\n"
              << "    kiln-cifar10 --dataset fashion-mnist ...\n";
  } else {
    std::cerr << "  Install it with:  sudo apt-get install dataset-fashion-mnist\n"
              << "  (it goes to /usr/share/datasets/fashion-mnist), or pass --data DIR.\n";
  }
  return std::nullopt;
}

apps::RunConfig run_config(const Options& o, const std::string& norm, int64_t batch) {
  apps::RunConfig c;
  c.model = o.model;
  c.norm = norm;
  c.groups = o.groups;
  c.batch = batch;
  c.epochs = o.epochs;
  c.optimizer = o.optimizer;
  // Linear scaling rule (Goyal et al.): the base rate is for 32 images, and scales as B / 32 with
  // B the global batch, workers x images per worker, as in the paper.
  const int64_t global_batch = batch * o.world_size;
  c.lr = o.no_lr_scaling ? o.base_lr : o.base_lr * static_cast<double>(global_batch) / 32.0;
  c.momentum = o.momentum;
  c.weight_decay = o.weight_decay;
  c.schedule = o.schedule;
  c.seed = o.seed;
  c.augment = !o.no_augment;
  c.dataset = o.dataset;
  c.resume = o.resume;
  c.checkpoint_steps = o.checkpoint_steps;
  c.stop_after_steps = o.stop_after_steps;
  return c;
}

void print_summary(const apps::RunResult& r) {
  std::printf("\n%-6s %11s %10s %10s %9s %9s %8s\n", "epoch", "train loss", "train acc", "test loss",
              "test acc", "img/s", "seconds");
  for (const auto& m : r.epochs)
    std::printf("%-6lld %11.4f %9.2f%% %10.4f %8.2f%% %9.0f %8.1f\n", static_cast<long long>(m.epoch),
                m.train_loss, 100 * m.train_accuracy, m.test_loss, 100 * m.test_accuracy,
                m.images_per_second, m.seconds);
}

// Why --out cannot become a directory of results, or nothing when it can: its nearest existing
// ancestor (--out itself, when it exists) must be a writable directory.
std::optional<std::string> out_dir_problem(const std::string& out) {
  std::error_code ec;
  fs::path p = fs::absolute(out, ec);
  if (ec) return ec.message();
  while (!fs::exists(p, ec) && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  if (!fs::is_directory(p, ec)) return p.string() + " is not a directory";
  if (::access(p.c_str(), W_OK) != 0) return p.string() + " is not writable";
  return std::nullopt;
}

// The batch sizes of --sweep ("32,16,8"), or the first entry that is not a positive integer.
struct SweepBatches {
  std::vector<int64_t> sizes;
  std::optional<std::string> bad;
};

SweepBatches parse_sweep(const std::string& text) {
  SweepBatches out;
  for (const std::string& b : split_list(text)) {
    char* end = nullptr;
    const long long v = std::strtoll(b.c_str(), &end, 10);
    if (*end != '\0' || v < 1) {
      out.bad = b;
      return out;
    }
    out.sizes.push_back(v);
  }
  return out;
}

int run_sweep(const Options& o, const data::Dataset& train, const data::Dataset& test) {
  const std::vector<int64_t> batches = parse_sweep(o.sweep).sizes;  // checked in main
  const std::vector<std::string> norms = split_list(o.sweep_norms);
  if (o.root()) fs::create_directories(o.out);
  struct Cell {
    std::string norm;
    int64_t batch;
    double error, images_per_second;
  };
  std::vector<Cell> cells;
  for (const std::string& norm : norms) {
    for (int64_t batch : batches) {
      apps::RunConfig c = run_config(o, norm, batch);
      c.out = o.out + "/" + norm + "-b" + std::to_string(batch);
      c.label = norm + " b=" + std::to_string(batch);
      std::cout << "== " << c.label << ": lr " << c.lr << ", " << c.epochs << " epochs -> " << c.out << "\n";
      apps::RunResult r = apps::train_run(c, train, test);
      double rate = 0;
      for (const auto& m : r.epochs) rate += m.images_per_second / static_cast<double>(r.epochs.size());
      cells.push_back({norm, batch, r.final_test_error(), rate});
    }
  }
  // sweep.csv, sweep.md and sweep.svg: test error per norm and batch size.
  std::ostringstream csv, md;
  csv << "norm,batch,test_error,images_per_second\n";
  md << "| norm |";
  for (int64_t b : batches) md << " batch " << b << " |";
  md << "\n|---|";
  for (size_t i = 0; i < batches.size(); ++i) md << "---:|";
  md << "\n";
  apps::LineChart chart;
  chart.title = o.model + " on " + (o.dataset == "cifar10" ? "CIFAR-10" : "Fashion-MNIST") +
                ": test error vs batch size";
  chart.x_label = "batch size (images per worker)";
  chart.y_label = "test error (%)";
  chart.log2_x = true;
  for (const std::string& norm : norms) {
    apps::Series s{norm, {}, {}};
    md << "| " << norm << " |";
    for (const Cell& cell : cells) {
      if (cell.norm != norm) continue;
      char buf[128];
      std::snprintf(buf, sizeof buf, "%s,%lld,%.4f,%.1f\n", cell.norm.c_str(),
                    static_cast<long long>(cell.batch), cell.error, cell.images_per_second);
      csv << buf;
      std::snprintf(buf, sizeof buf, " %.2f%% |", 100 * cell.error);
      md << buf;
      s.x.push_back(static_cast<double>(cell.batch));
      s.y.push_back(100 * cell.error);
    }
    md << "\n";
    chart.series.push_back(s);
  }
  if (o.root()) {
    write_file_atomic(o.out + "/sweep.csv", csv.str());
    write_file_atomic(o.out + "/sweep.md", md.str());
    apps::write_svg(o.out + "/sweep.svg", chart);
  }
  std::cout << "\nTest error by norm and batch size (" << o.model << ", " << o.epochs << " epochs):\n\n"
            << md.str() << "\nplot: " << o.out << "/sweep.svg\ntable: " << o.out << "/sweep.md\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  DistributedSession session(argc, argv);
  Options o;
  o.rank = session.rank;
  o.world_size = session.world_size;
  // Only rank 0 prints: the others' standard output goes nowhere (errors still reach stderr).
  if (!o.root() && std::freopen("/dev/null", "w", stdout) == nullptr) session.abort_all(1);
  CLI::App app{"kiln-cifar10: train VGG models with GroupNorm, BatchNorm and friends, and compare "
               "them across batch sizes (Wu and He, Group Normalization, 2018)."};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // the last one wins
  app.add_option("--dataset", o.dataset, "cifar10 or fashion-mnist (padded to 32x32)")
      ->check(CLI::IsMember({"cifar10", "fashion-mnist"}));
  app.add_option("--data", o.data_dir, "data directory (default: data/cifar10, or the Debian "
                 "package's /usr/share/datasets/fashion-mnist)");
  app.add_option("--model", o.model, "vgg8 or vgg16")->check(CLI::IsMember({"vgg8", "vgg16"}));
  app.add_option("--norm", o.norm, "gn, bn, syncbn, ln, in, gn+ws or none (syncbn: BatchNorm with "
                 "statistics over all workers under mpirun; bn on one process)")
      ->check(CLI::IsMember(apps::norm_names()));
  app.add_option("--groups", o.groups, "groups of GroupNorm (min(groups, channels) per layer)")
      ->check(integer_at_least(1));
  app.add_option("--batch", o.batch, "images per step per worker (process); under mpirun -np P "
                 "a step trains on P x this many")->check(integer_at_least(1));
  app.add_option("--epochs", o.epochs, "epochs")->check(integer_at_least(1));
  app.add_option("--optimizer", o.optimizer, "sgd or adam")->check(CLI::IsMember({"sgd", "adam"}));
  app.add_option("--lr", o.base_lr, "learning rate for a global batch of 32 (default 0.02 for "
                 "sgd, 1e-3 for adam); scaled by global batch/32, the global batch being "
                 "workers x --batch")
      ->check(number_in(0, HUGE_VAL, true, "a number > 0", "POSITIVE"));
  app.add_flag("--no-lr-scaling", o.no_lr_scaling, "use --lr as given, whatever the batch");
  app.add_option("--momentum", o.momentum, "SGD momentum")
      ->check(number_in(0, 1, false, "a number in [0, 1]", "[0, 1]"));
  app.add_option("--weight-decay", o.weight_decay, "weight decay")
      ->check(number_in(0, HUGE_VAL, false, "a number >= 0", "NONNEGATIVE"));
  app.add_option("--schedule", o.schedule, "none, cosine or step")
      ->check(CLI::IsMember({"none", "cosine", "step"}));
  app.add_option("--threads", o.threads, "threads per process (default: KILN_NUM_THREADS, else "
                 "the cores shared among the processes on this machine)")
      ->check(integer_at_least(1));
  app.add_option("--seed", o.seed, "seed for weights, shuffling and augmentation");
  app.add_option("--limit-train", o.limit_train, "train on the first N images only")
      ->check(integer_at_least(1));
  app.add_option("--limit-test", o.limit_test, "evaluate on the first N images only")
      ->check(integer_at_least(1));
  app.add_option("--out", o.out, "output directory");
  app.add_flag("--resume", o.resume, "continue from the checkpoint in --out");
  app.add_option("--checkpoint-steps", o.checkpoint_steps, "also checkpoint every N steps")
      ->check(integer_at_least(0));
  app.add_option("--stop-after-steps", o.stop_after_steps,
                 "checkpoint and stop after N steps in all; --resume continues")
      ->check(integer_at_least(0));
  app.add_option("--cifar-records", o.cifar_records,
                 "records in each CIFAR-10 file (10000; smaller for test data in the same format)")
      ->check(integer_at_least(1));
  app.add_option("--sweep", o.sweep, "batch sizes to sweep, e.g. 32,16,8,4,2");
  app.add_option("--sweep-norms", o.sweep_norms, "norms to sweep (default gn,bn)");
  app.add_flag("--no-augment", o.no_augment, "no random crop and flip for CIFAR-10");

  // Every rank parses the same flags and fails the same way; rank 0 says why.
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (o.root()) std::cerr << "kiln-cifar10: " << e.what() << "\n\n" << app.help();
    return 2;
  }
  for (const std::string& n : split_list(o.sweep_norms)) {
    const auto& names = apps::norm_names();
    if (std::find(names.begin(), names.end(), n) == names.end()) {
      if (o.root()) {
        std::cerr << "kiln-cifar10: --sweep-norms: '" << n << "' is not one of";
        for (const std::string& name : names) std::cerr << " " << name;
        std::cerr << "\n\n" << app.help();
      }
      return 2;
    }
  }
  if (const std::optional<std::string> problem = out_dir_problem(o.out)) {
    if (o.root())
      std::cerr << "kiln-cifar10: --out: expected a directory for the results, got '" << o.out
                << "' (" << *problem << ")\n\n" << app.help();
    return 2;
  }
  if (const SweepBatches sweep = parse_sweep(o.sweep); sweep.bad) {
    if (o.root())
      std::cerr << "kiln-cifar10: --sweep: expected positive batch sizes like 32,16,8, got '"
                << *sweep.bad << "'\n\n" << app.help();
    return 2;
  }
  // --groups against the model, before any data is read: GroupNorm(min(groups, c), c) per layer.
  const std::vector<std::string> norms_to_run =
      o.sweep.empty() ? std::vector<std::string>{o.norm} : split_list(o.sweep_norms);
  const bool uses_group_norm =
      std::any_of(norms_to_run.begin(), norms_to_run.end(),
                  [](const std::string& n) { return n == "gn" || n == "gn+ws"; });
  if (uses_group_norm) {
    try {
      apps::check_vgg_groups(apps::vgg_blocks(o.model), o.groups);
    } catch (const Error& e) {
      if (o.root()) std::cerr << "kiln-cifar10: " << e.what() << "\n\n" << app.help();
      return 2;
    }
  }
  if (o.base_lr < 0) o.base_lr = o.optimizer == "sgd" ? 0.02 : 1e-3;

  try {
    if (o.threads > 0) {
      set_num_threads(o.threads);
    } else if (session.local_world_size > 1 && std::getenv("KILN_NUM_THREADS") == nullptr) {
      // Several processes on this machine: share the cores rather than oversubscribe them.
      set_num_threads(std::max(1, num_threads() / session.local_world_size));
    }
    std::optional<LoadedData> d = load_data(o);
    if (!d) return 1;
    std::unique_ptr<data::Dataset> train_subset, test_subset;
    const data::Dataset* train = d->train.get();
    const data::Dataset* test = d->test.get();
    if (o.limit_train > 0) train = (train_subset = std::make_unique<Subset>(*train, o.limit_train)).get();
    if (o.limit_test > 0) test = (test_subset = std::make_unique<Subset>(*test, o.limit_test)).get();
    std::cout << "kiln-cifar10: " << (o.dataset == "cifar10" ? "CIFAR-10" : "Fashion-MNIST") << " from "
              << d->where << ": " << train->size() << " train / " << test->size() << " test images, "
              << o.model << ", ";
    if (o.world_size > 1)
      std::cout << o.world_size << " processes x " << num_threads() << " threads, batch " << o.batch
                << " per process";
    else
      std::cout << num_threads() << " threads";
    // Another CPU's OpenBLAS kernels can round differently (see kiln::blas_kernels).
    std::cout << ", OpenBLAS " << blas_kernels() << " kernels\n";
    if (!o.sweep.empty()) return run_sweep(o, *train, *test);
    apps::RunConfig c = run_config(o, o.norm, o.batch);
    c.out = o.out;
    apps::RunResult r = apps::train_run(c, *train, *test);
    if (r.stopped_early) return 0;
    print_summary(r);
    std::printf("\nfinal test error %.2f%%\nmetrics: %s/metrics.csv\ncurves: %s/curves.svg\n",
                100 * r.final_test_error(), o.out.c_str(), o.out.c_str());
    return 0;
  } catch (const std::exception& e) {
    if (o.world_size == 1) {
      std::cerr << "kiln-cifar10: " << e.what() << "\n";
      return 1;
    }
    std::cerr << "kiln-cifar10 (rank " << o.rank << "): " << e.what() << "\n";
    session.abort_all(1);
  }
}
