// Training checkpoints: what they hold, their errors, and exact resume in a fresh process.
#include <cstdlib>
#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

#include "../reliability/bad_input.h"
#include "../temp_dir.h"
#include "../test_helpers.h"
#include "tiny_mlp.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr int64_t kSamples = 48, kBatch = 8, kBatchesPerEpoch = kSamples / kBatch;

// A small training run with every kind of state a resume must restore: parameters, AdamW moments
// and step counts in two groups, a warm-up + cosine schedule, a shuffled data order and a position
// in it, an augmentation generator, and dropout drawing from the default generator.
struct Trainer {
  std::shared_ptr<TinyMLP> model;
  std::unique_ptr<optim::AdamW> opt;
  std::unique_ptr<optim::SequentialLR> sched;
  Generator augment;
  Tensor inputs, targets;
  int64_t epoch = 0, next_batch = 0, step = 0;

  // `seed` sets the initial weights and generators; a resumed trainer overwrites all of them.
  explicit Trainer(uint64_t seed) : augment(seed + 1) {
    manual_seed(seed);
    model = std::make_shared<TinyMLP>(6, 16, 3);
    opt = std::make_unique<optim::AdamW>(
        std::vector<optim::AdamW::ParamGroup>{
            {model->fc1->parameters(), optim::AdamOptions{.lr = 0.02, .amsgrad = true}},
            {model->fc2->parameters()}},
        optim::AdamOptions{.lr = 0.01, .weight_decay = 0.05});
    auto warmup = std::make_shared<optim::LinearLR>(*opt, 0.2, 1.0, 3);
    auto cosine = std::make_shared<optim::CosineAnnealingLR>(*opt, 12, 1e-4);
    sched = std::make_unique<optim::SequentialLR>(
        *opt, std::vector<std::shared_ptr<optim::LRScheduler>>{warmup, cosine}, std::vector<int64_t>{3});
    Generator data(123);  // the data set itself is fixed
    inputs = Tensor::randn({kSamples, 6}, DType::f32, &data);
    targets = Tensor::randn({kSamples, 3}, DType::f32, &data);
  }

  // The data loader's order: a pure function of the epoch, so (epoch, next_batch) is its position.
  static std::vector<int64_t> order(int64_t epoch) {
    Generator g(1000 + static_cast<uint64_t>(epoch));
    std::vector<int64_t> perm(kSamples);
    for (int64_t i = 0; i < kSamples; ++i) perm[i] = i;
    for (int64_t i = kSamples - 1; i > 0; --i) std::swap(perm[i], perm[g.next_below(i + 1)]);
    return perm;
  }

  void train_step() {
    const std::vector<int64_t> perm = order(epoch);
    std::vector<Tensor> xs, ys;
    for (int64_t k = 0; k < kBatch; ++k) {
      const int64_t i = perm[next_batch * kBatch + k];
      xs.push_back(inputs.slice(0, i, i + 1));
      ys.push_back(targets.slice(0, i, i + 1));
    }
    const Tensor x = cat(xs) + Tensor::randn({kBatch, 6}, DType::f32, &augment) * 0.05;
    const Tensor keep = lt(Tensor::rand({kBatch, 16}), Tensor::scalar(0.8));  // default generator
    opt->zero_grad();
    const Tensor hidden = model->fc1->forward(x).tanh() * keep / 0.8;
    mse(model->fc2->forward(hidden), cat(ys)).backward();
    optim::clip_grad_norm_(model->parameters(), 1.0);
    opt->step();
    sched->step();
    ++step;
    if (++next_batch == kBatchesPerEpoch) {
      next_batch = 0;
      ++epoch;
    }
  }

  optim::TrainingState state() {
    return {.model = model.get(), .optimizer = opt.get(), .scheduler = sched.get(),
            .generators = {{"augment", &augment}}, .epoch = epoch, .step = step,
            .data_position = {epoch, next_batch}, .extra = {{"run", "resume-test"}}};
  }

  void save(const std::string& path) { optim::save_checkpoint(path, state()); }

  void load(const std::string& path) {
    optim::TrainingState s = state();
    optim::load_checkpoint(path, s);
    REQUIRE(s.data_position.size() == 2);
    REQUIRE(s.extra.at("run") == "resume-test");
    epoch = s.data_position[0];
    next_batch = s.data_position[1];
    step = s.step;
  }
};

constexpr int kSteps = 14;  // two epochs and a bit; the save falls mid-epoch, mid-cosine

}  // namespace

TEST_CASE("a checkpoint holds the model, optimizer, scheduler, generators and position", "[optim][checkpoint]") {
  TempDir dir("kiln-ckpt");
  Trainer t(0);
  for (int i = 0; i < 5; ++i) t.train_step();
  t.save(dir.file("ckpt.safetensors"));
  // Any safetensors reader can open it.
  const SafetensorsContents c = read_safetensors(dir.file("ckpt.safetensors"));
  std::map<std::string, Tensor> tensors(c.tensors.begin(), c.tensors.end());
  require_equal(tensors.at("model.fc1.weight"), t.model->fc1->weight);
  REQUIRE(tensors.at("optimizer.state.0.step").item<int64_t>() == 5);
  REQUIRE(tensors.count("optimizer.state.0.max_exp_avg_sq") == 1);
  REQUIRE(tensors.at("data_position").to_vector<int64_t>() == std::vector<int64_t>{0, 5});
  REQUIRE(c.metadata.at("kiln.checkpoint") == "1");
  REQUIRE(c.metadata.at("step") == "5");
  REQUIRE(c.metadata.at("optimizer.type") == "AdamW");
  REQUIRE(c.metadata.at("scheduler.type") == "SequentialLR");
  REQUIRE(c.metadata.at("scheduler.last_epoch") == "5");
  REQUIRE(c.metadata.at("rng.default.offset") == std::to_string(default_generator().offset()));
  REQUIRE(c.metadata.at("rng.augment.offset") == std::to_string(t.augment.offset()));
  REQUIRE(c.metadata.at("extra.run") == "resume-test");

  // Loading into a differently initialized trainer restores every part.
  Trainer u(77);
  u.load(dir.file("ckpt.safetensors"));
  const auto a = t.model->state_dict(), b = u.model->state_dict();
  for (size_t i = 0; i < a.size(); ++i) require_equal(a[i].second, b[i].second);
  REQUIRE(u.opt->lr(0) == t.opt->lr(0));
  REQUIRE(u.sched->last_epoch() == 5);
  REQUIRE(u.augment.offset() == t.augment.offset());
  REQUIRE(u.step == 5);
  REQUIRE(u.next_batch == 5);
}

TEST_CASE("a checkpoint that does not fit is refused and changes nothing", "[optim][checkpoint][bad-input]") {
  TempDir dir("kiln-ckpt");
  Trainer t(0);
  t.train_step();
  t.save(dir.file("ckpt.safetensors"));

  // A model of another shape: the error names the file and the key; nothing else was touched.
  Trainer u(5);
  u.train_step();
  auto other = std::make_shared<TinyMLP>(6, 8, 3);
  const std::vector<float> weights = u.model->fc1->weight.to_vector<float>();
  const uint64_t default_offset = default_generator().offset(), augment_offset = u.augment.offset();
  optim::TrainingState s = u.state();
  s.model = other.get();
  require_bad_input("checkpoint", "load_checkpoint of a TinyMLP(6, 16, 3) run into TinyMLP(6, 8, 3)",
                    [&] { optim::load_checkpoint(dir.file("ckpt.safetensors"), s); },
                    Catch::StartsWith(dir.file("ckpt.safetensors") + ": ") && Catch::Contains("fc1.weight"));
  REQUIRE(default_generator().offset() == default_offset);
  REQUIRE(u.augment.offset() == augment_offset);
  REQUIRE(u.opt->state(0).at("step").item<int64_t>() == 1);
  REQUIRE(u.sched->last_epoch() == 1);
  REQUIRE(s.step == 1);

  // An optimizer of another kind.
  optim::SGD sgd(u.model->parameters());
  s = u.state();
  s.optimizer = &sgd;
  require_bad_input("checkpoint", "load_checkpoint of an AdamW run with an SGD optimizer",
                    [&] { optim::load_checkpoint(dir.file("ckpt.safetensors"), s); },
                    Catch::Contains("optimizer state: type: the state was saved by AdamW, but this is SGD"));
  REQUIRE(u.model->fc1->weight.to_vector<float>() == weights);

  // A generator the file does not have.
  Generator extra(1);
  s = u.state();
  s.generators.emplace_back("noise", &extra);
  require_bad_input("checkpoint", "load_checkpoint asked for a generator the file does not have",
                    [&] { optim::load_checkpoint(dir.file("ckpt.safetensors"), s); },
                    Catch::Contains("rng.noise.seed: missing"));

  // A plain state dict is not a training checkpoint.
  save_safetensors(dir.file("weights.safetensors"), u.model->state_dict());
  s = u.state();
  require_bad_input("checkpoint", "load_checkpoint of a plain state dict file",
                    [&] { optim::load_checkpoint(dir.file("weights.safetensors"), s); },
                    Catch::Contains("kiln.checkpoint: missing; this is not a kiln training checkpoint"));
}

// The second half of the resume test, run by the first in a fresh process (see below). Hidden: it
// does nothing unless KILN_RESUME_FROM names a checkpoint.
TEST_CASE("resume child process", "[.][resume-child]") {
  const char* from = std::getenv("KILN_RESUME_FROM");
  const char* to = std::getenv("KILN_RESUME_TO");
  if (!from || !to) return;
  Trainer t(999);  // other weights and generators: the checkpoint must replace them all
  t.load(from);
  REQUIRE(t.step == kSteps / 2);
  while (t.step < kSteps) t.train_step();
  t.save(to);
}

TEST_CASE("N steps equal N/2 steps, a checkpoint, and N/2 steps in a fresh process, bit for bit",
          "[optim][checkpoint][resume]") {
  TempDir dir("kiln-resume");
  Trainer straight(0);
  while (straight.step < kSteps) straight.train_step();
  straight.save(dir.file("straight.safetensors"));

  Trainer first_half(0);
  while (first_half.step < kSteps / 2) first_half.train_step();
  first_half.save(dir.file("half.safetensors"));

  // The second half runs in a new process of this test binary, with one thread where this one
  // may have several: the result must not depend on either.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::setenv("KILN_RESUME_FROM", dir.file("half.safetensors").c_str(), 1);
    ::setenv("KILN_RESUME_TO", dir.file("resumed.safetensors").c_str(), 1);
    ::setenv("KILN_NUM_THREADS", "1", 1);
    if (std::FILE* null = std::fopen("/dev/null", "w")) ::dup2(::fileno(null), STDOUT_FILENO);
    ::execl("/proc/self/exe", "kiln_tests", "resume child process", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  // The whole final state, byte for byte: weights, moments, step counts, schedule, generators,
  // epoch, step and data position.
  const std::string want = read_bytes(dir.file("straight.safetensors"));
  const std::string got = read_bytes(dir.file("resumed.safetensors"));
  REQUIRE(!want.empty());
  if (got != want) {
    const auto a = read_safetensors(dir.file("straight.safetensors"));
    const auto b = read_safetensors(dir.file("resumed.safetensors"));
    REQUIRE(a.metadata == b.metadata);
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      INFO(a.tensors[i].first);
      require_equal(b.tensors[i].second, a.tensors[i].second);
    }
  }
  REQUIRE(got == want);
}
