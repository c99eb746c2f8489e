// Schedulers against PyTorch's rates (tests/tools/optim_fixtures.py), resume, and errors.
#include <functional>

#include "../test_helpers.h"

using namespace kiln;
using namespace kiln::testing;
using optim::LRScheduler;

namespace {

// Two groups with rates 0.1 and 0.02, as the fixture's optimizer.
struct Setup {
  Tensor a = Tensor::zeros({1}).requires_grad_(), b = Tensor::zeros({1}).requires_grad_();
  optim::SGD opt{std::vector<optim::SGD::ParamGroup>{{{a}, optim::SGDOptions{.lr = 0.1}},
                                                     {{b}, optim::SGDOptions{.lr = 0.02}}}};
};

using Make = std::function<std::unique_ptr<LRScheduler>(optim::Optimizer&)>;

std::map<std::string, Make> schedules() {
  using namespace optim;
  using Parts = std::vector<std::shared_ptr<LRScheduler>>;
  std::map<std::string, Make> out;
  out["step"] = [](Optimizer& o) { return std::make_unique<StepLR>(o, 3, 0.5); };
  out["multistep"] = [](Optimizer& o) { return std::make_unique<MultiStepLR>(o, std::vector<int64_t>{9, 2, 5, 5}, 0.3); };
  out["cosine"] = [](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 10, 1e-3); };
  out["linear"] = [](Optimizer& o) { return std::make_unique<LinearLR>(o, 0.1, 0.9, 4); };
  out["warmup_cosine"] = [](Optimizer& o) {
    auto warmup = std::make_shared<LinearLR>(o, 0.1, 1.0, 3);
    auto cosine = std::make_shared<CosineAnnealingLR>(o, 8);
    return std::make_unique<SequentialLR>(o, Parts{warmup, cosine}, std::vector<int64_t>{3});
  };
  out["warmup_multistep"] = [](Optimizer& o) {
    auto warmup = std::make_shared<LinearLR>(o, 0.5, 1.0, 5);
    auto steps = std::make_shared<MultiStepLR>(o, std::vector<int64_t>{4, 6});
    return std::make_unique<SequentialLR>(o, Parts{warmup, steps}, std::vector<int64_t>{5});
  };
  out["chained_warmup_step"] = [](Optimizer& o) {
    auto warmup = std::make_shared<LinearLR>(o, 0.2, 1.0, 4);
    auto steps = std::make_shared<StepLR>(o, 3, 0.5);
    return std::make_unique<ChainedScheduler>(o, Parts{warmup, steps});
  };
  return out;
}

}  // namespace

TEST_CASE("schedulers set PyTorch's learning rates", "[optim][scheduler]") {
  const auto fx = load_fixture("lr_schedules.safetensors");
  for (const auto& [name, make] : schedules()) {
    SECTION(name) {
      Setup s;
      auto sched = make(s.opt);
      const std::vector<double> want = fx.at(name).to_vector<double>();
      double worst = 0;
      for (size_t step = 0; step < want.size() / 2; ++step) {
        for (size_t g = 0; g < 2; ++g) {
          const double expected = want[2 * step + g];
          worst = std::max(worst, std::fabs(s.opt.lr(g) - expected) / expected);
          REQUIRE(sched->last_lr()[g] == s.opt.lr(g));
        }
        sched->step();
      }
      INFO(name << ": max relative difference " << worst);
      // PyTorch updates rates recursively, kiln in closed form: they agree to rounding.
      REQUIRE(worst <= 1e-13);
    }
  }
}

TEST_CASE("a scheduler resumes from its state dict at the same rates", "[optim][scheduler]") {
  for (const auto& [name, make] : schedules()) {
    SECTION(name) {
      Setup straight, resumed;
      auto a = make(straight.opt);
      for (int i = 0; i < 7; ++i) a->step();
      const Metadata saved = a->state_dict();
      const optim::StateDict saved_opt = straight.opt.state_dict();
      auto b = make(resumed.opt);
      resumed.opt.load_state_dict(saved_opt);
      b->load_state_dict(saved);
      REQUIRE(b->last_epoch() == 7);
      for (int i = 0; i < 20; ++i) {
        a->step();
        b->step();
        REQUIRE(straight.opt.lr(0) == resumed.opt.lr(0));
        REQUIRE(straight.opt.lr(1) == resumed.opt.lr(1));
      }
    }
  }
}

TEST_CASE("scheduler errors name what is wrong", "[optim][scheduler]") {
  Setup s;
  auto warmup = std::make_shared<optim::LinearLR>(s.opt, 0.1, 1.0, 3);
  auto cosine = std::make_shared<optim::CosineAnnealingLR>(s.opt, 8);
  optim::SequentialLR seq(s.opt, {warmup, cosine}, {3});
  REQUIRE_THAT(error_text([&] { warmup->step(); }),
               Catch::Contains("LinearLR: this scheduler is a part of a SequentialLR; step the SequentialLR instead"));
  REQUIRE_THAT(error_text([&] { optim::SequentialLR(s.opt, {std::make_shared<optim::StepLR>(s.opt, 2)}, {3}); }),
               Catch::Contains("expected 0 milestones for 1 schedulers, got 1"));
  REQUIRE_THAT(error_text([&] { optim::StepLR(s.opt, 0); }), Catch::Contains("step_size must be >= 1, got 0"));

  // A state saved by a scheduler built differently is refused, naming the setting.
  Setup other;
  optim::StepLR a(other.opt, 3, 0.5);
  Metadata state = a.state_dict();
  Setup third;
  optim::StepLR b(third.opt, 4, 0.5);
  REQUIRE_THAT(error_text([&] { b.load_state_dict(state); }),
               Catch::Contains("scheduler state: step_size: the saved StepLR has step_size 3, but this one has 4"));
  optim::CosineAnnealingLR c(third.opt, 4);
  REQUIRE_THAT(error_text([&] { c.load_state_dict(state); }),
               Catch::Contains("type: the state is a StepLR's, but this is a CosineAnnealingLR"));
  state["last_epoch"] = "-3";
  optim::StepLR d(third.opt, 3, 0.5);
  REQUIRE_THAT(error_text([&] { d.load_state_dict(state); }), Catch::Contains("last_epoch: must be >= 0"));
  REQUIRE(d.last_epoch() == 0);
}

TEST_CASE("schedulers share the first scheduler's base rate", "[optim][scheduler]") {
  Setup s;
  // The warm-up lowers the rate at construction; the cosine made after it still starts from 0.1.
  auto warmup = std::make_shared<optim::LinearLR>(s.opt, 0.1, 1.0, 3);
  auto cosine = std::make_shared<optim::CosineAnnealingLR>(s.opt, 8);
  REQUIRE(cosine->base_lrs() == std::vector<double>{0.1, 0.02});
  REQUIRE(s.opt.initial_lr(0) == 0.1);
}
