// 20 steps of each optimizer on a small MLP against PyTorch's trajectory
// (fixtures: tests/tools/optim_fixtures.py -> tests/data/optim_trajectories.safetensors).
#include <cstdio>
#include <functional>
#include <map>

#include "../test_helpers.h"
#include "tiny_mlp.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr int kSteps = 20;

struct Run {
  std::shared_ptr<TinyMLP> model;
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<optim::LRScheduler> sched;
  double clip = 0;
};

using Factory = std::function<Run(DType)>;

std::shared_ptr<TinyMLP> initial_model(const std::map<std::string, Tensor>& fx, DType dtype) {
  auto model = std::make_shared<TinyMLP>(6, 10, 4, dtype);
  NamedTensors init;
  for (const auto& [name, t] : model->state_dict()) init.emplace_back(name, fx.at("init." + name).to(dtype));
  model->load_state_dict(init);
  return model;
}

// The configurations of optim_fixtures.py, rebuilt with kiln's API.
std::map<std::string, Factory> configs(const std::map<std::string, Tensor>& fx) {
  using namespace optim;
  auto plain = [&fx](auto make) {
    return [&fx, make](DType dtype) {
      Run run;
      run.model = initial_model(fx, dtype);
      run.opt = make(run.model->parameters());
      return run;
    };
  };
  std::map<std::string, Factory> out;
  out["sgd"] = plain([](auto p) { return std::make_unique<SGD>(p, SGDOptions{.lr = 0.1}); });
  out["sgd_momentum"] = plain([](auto p) {
    return std::make_unique<SGD>(p, SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-3});
  });
  out["sgd_nesterov"] = plain([](auto p) {
    return std::make_unique<SGD>(p, SGDOptions{.lr = 0.05, .momentum = 0.8, .weight_decay = 1e-2, .nesterov = true});
  });
  out["sgd_maximize"] = plain([](auto p) {
    return std::make_unique<SGD>(p, SGDOptions{.lr = 0.01, .momentum = 0.5, .maximize = true});
  });
  out["adam"] = plain([](auto p) { return std::make_unique<Adam>(p, AdamOptions{.lr = 1e-2}); });
  out["adam_amsgrad_wd"] = plain([](auto p) {
    return std::make_unique<Adam>(p, AdamOptions{.lr = 5e-3, .betas = {0.8, 0.99}, .eps = 1e-6,
                                                 .weight_decay = 1e-2, .amsgrad = true});
  });
  out["adam_maximize"] = plain([](auto p) {
    return std::make_unique<Adam>(p, AdamOptions{.lr = 1e-3, .maximize = true});
  });
  // weight_decay left unset: AdamW's default, 1e-2.
  out["adamw"] = plain([](auto p) { return std::make_unique<AdamW>(p, AdamOptions{.lr = 1e-2}); });
  out["adamw_amsgrad"] = plain([](auto p) {
    return std::make_unique<AdamW>(p, AdamOptions{.lr = 3e-3, .betas = {0.85, 0.995}, .weight_decay = 0.1,
                                                  .amsgrad = true});
  });
  out["sgd_groups_warmup_cosine"] = [&fx](DType dtype) {
    Run run;
    run.model = initial_model(fx, dtype);
    const SGDOptions defaults{.lr = 0.02, .momentum = 0.9};
    SGDOptions fc1 = defaults;
    fc1.lr = 0.1;
    run.opt = std::make_unique<SGD>(
        std::vector<SGD::ParamGroup>{{run.model->fc1->parameters(), fc1}, {run.model->fc2->parameters()}},
        defaults);
    auto warmup = std::make_shared<LinearLR>(*run.opt, 0.25, 1.0, 4);
    auto cosine = std::make_shared<CosineAnnealingLR>(*run.opt, 16, 1e-3);
    run.sched = std::make_unique<SequentialLR>(*run.opt, std::vector<std::shared_ptr<LRScheduler>>{warmup, cosine},
                                               std::vector<int64_t>{4});
    return run;
  };
  out["adam_clip_steplr"] = [&fx](DType dtype) {
    Run run;
    run.model = initial_model(fx, dtype);
    run.opt = std::make_unique<Adam>(run.model->parameters(), AdamOptions{.lr = 2e-2});
    run.sched = std::make_unique<StepLR>(*run.opt, 5, 0.5);
    run.clip = 0.05;
    return run;
  };
  return out;
}

// Elementwise relative error max |a - b| / |b| over elements with |b| >= floor, the absolute
// error on the smaller ones, and the normwise relative error max over tensors of ||a - b|| / ||b||.
struct Errors {
  double relative = 0;
  double absolute_small = 0;
  double normwise = 0;
};

void accumulate(Errors& e, const Tensor& got, const Tensor& want, double floor) {
  REQUIRE(got.shape() == want.shape());
  auto a = got.to_vector<double>(), b = want.to_vector<double>();
  double diff2 = 0, norm2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::fabs(a[i] - b[i]);
    if (std::fabs(b[i]) >= floor) e.relative = std::max(e.relative, diff / std::fabs(b[i]));
    else e.absolute_small = std::max(e.absolute_small, diff);
    diff2 += diff * diff;
    norm2 += b[i] * b[i];
  }
  e.normwise = std::max(e.normwise, std::sqrt(diff2 / norm2));
}

Tensor at_step(const std::map<std::string, Tensor>& fx, const std::string& key, int step) {
  return fx.at(key).slice(0, step, step + 1).squeeze(0);
}

// Elements below this magnitude are compared absolutely: a relative error means nothing near 0.
constexpr double kFloor = 1e-3;

}  // namespace

// The optimizers alone: each step is given the very gradients PyTorch's step consumed, so the
// trajectory depends only on the update arithmetic (and the schedulers' rates).
TEST_CASE("optimizer updates match PyTorch given PyTorch's gradients (f32)", "[optim][parity]") {
  const auto fx = load_fixture("optim_trajectories.safetensors");
  for (const auto& [name, make] : configs(fx)) {
    SECTION(name) {
      const std::string tag = name + ".f32";
      Run run = make(DType::f32);
      Errors err;
      for (int step = 0; step < kSteps; ++step) {
        for (const auto& [pname, p] : run.model->named_parameters())
          Tensor(p).set_grad(at_step(fx, tag + ".grad." + pname, step).clone());
        run.opt->step();
        if (run.sched) run.sched->step();
        for (const auto& [pname, p] : run.model->state_dict())
          accumulate(err, p, at_step(fx, tag + "." + pname, step), kFloor);
      }
      std::printf("update parity %-28s f32 max rel err %.3g (|x| < %g: max abs err %.3g), normwise %.3g\n",
                  name.c_str(), err.relative, kFloor, err.absolute_small, err.normwise);
      CHECK(err.relative <= 1e-6);
      CHECK(err.absolute_small <= 1e-9);
    }
  }
}

// The whole loop: kiln's forward and backward feed the optimizer. In f64 the trajectories agree to
// rounding. In f32 the gradients themselves differ from PyTorch's by rounding (another summation
// order in matmul and the reductions), and 20 steps carry that noise into the parameters; the
// bound is on the normwise error of each tensor, elementwise errors are reported.
TEST_CASE("optimizers follow PyTorch's 20-step trajectories on a small MLP", "[optim][parity]") {
  const auto fx = load_fixture("optim_trajectories.safetensors");
  for (const auto& [name, make] : configs(fx)) {
    for (DType dtype : {DType::f32, DType::f64}) {
      const std::string tag = name + "." + (dtype == DType::f32 ? "f32" : "f64");
      SECTION(tag) {
        Run run = make(dtype);
        const Tensor x = fx.at("x").to(dtype), y = fx.at("y").to(dtype);
        Errors err;
        double loss_err = 0, lr_err = 0, clip_err = 0;
        for (int step = 0; step < kSteps; ++step) {
          run.opt->zero_grad();
          Tensor loss = mse(run.model->forward(at_step({{"x", x}}, "x", step)), at_step({{"y", y}}, "y", step));
          loss.backward();
          if (run.clip > 0) {
            const double norm = optim::clip_grad_norm_(run.model->parameters(), run.clip);
            const double want = fx.at(tag + ".clip_norm").to_vector<double>()[step];
            clip_err = std::max(clip_err, std::fabs(norm - want) / want);
          }
          const auto lrs = fx.at(tag + ".lr").to_vector<double>();
          for (size_t g = 0; g < run.opt->num_param_groups(); ++g) {
            const double want = lrs[step * run.opt->num_param_groups() + g];
            lr_err = std::max(lr_err, std::fabs(run.opt->lr(g) - want) / want);
          }
          run.opt->step();
          if (run.sched) run.sched->step();
          const double want_loss = fx.at(tag + ".loss").to_vector<double>()[step];
          loss_err = std::max(loss_err, std::fabs(loss.item<double>() - want_loss) / std::fabs(want_loss));
          for (const auto& [pname, p] : run.model->state_dict())
            accumulate(err, p, at_step(fx, tag + "." + pname, step), kFloor);
        }
        std::printf("trajectory %-34s max rel err %.3g (|x| < %g: max abs err %.3g), normwise %.3g, "
                    "loss %.3g, lr %.3g, clip norm %.3g\n",
                    tag.c_str(), err.relative, kFloor, err.absolute_small, err.normwise, loss_err,
                    lr_err, clip_err);
        if (dtype == DType::f64) {
          CHECK(err.relative <= 1e-12);
          CHECK(err.absolute_small <= 1e-15);
          CHECK(loss_err <= 1e-12);
          CHECK(clip_err <= 1e-12);
        } else {
          CHECK(err.normwise <= 1e-6);
          CHECK(loss_err <= 1e-6);
          CHECK(clip_err <= 1e-6);
        }
        CHECK(lr_err <= 1e-14);
      }
    }
  }
}
