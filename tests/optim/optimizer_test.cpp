// Optimizer behaviour beyond the update rules: the public API, gradients, groups, state dicts
// and their errors.
#include "../temp_dir.h"
#include "../test_helpers.h"
#include "tiny_mlp.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// One training step of `net` on a fixed batch.
void train_step(TinyMLP& net, optim::Optimizer& opt) {
  const Tensor x = Tensor::from_vector(std::vector<float>{0.5f, -1, 2, 0.25f, 1.5f, -0.5f}, {2, 3});
  const Tensor y = Tensor::from_vector(std::vector<float>{1, 0, 0, 1}, {2, 2});
  opt.zero_grad();
  mse(net.forward(x), y).backward();
  opt.step();
}

std::vector<float> flat_params(const nn::Module& net) {
  std::vector<float> out;
  for (const auto& [name, t] : net.state_dict()) {
    auto v = t.to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace

TEST_CASE("the optimizer API of DESIGN.md compiles and trains", "[optim]") {
  manual_seed(0);
  auto net = std::make_shared<TinyMLP>(3, 5, 2);
  optim::Adam opt(net->parameters(), optim::AdamOptions{.lr = 2.5e-4});
  const std::vector<float> before = flat_params(*net);
  const Tensor x = Tensor::randn({4, 3}), y = Tensor::randn({4, 2});
  Tensor loss = mse(net->forward(x), y);
  opt.zero_grad(); loss.backward(); opt.step();
  REQUIRE(flat_params(*net) != before);
  optim::SGD sgd(net->parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  optim::AdamW adamw(net->parameters(), {.lr = 1e-3, .betas = {0.9, 0.99}, .amsgrad = true});
  REQUIRE(sgd.options(0).momentum == 0.9);
  Tensor w = Tensor::randn({3}).requires_grad_();
  optim::SGD braced({w}, {.lr = 0.1});
  REQUIRE(braced.parameters().size() == 1);
  REQUIRE(adamw.options(0).betas[1] == 0.99);
}

TEST_CASE("AdamW defaults weight_decay to 1e-2 only when it is left unset", "[optim]") {
  auto net = std::make_shared<TinyMLP>(3, 4, 2);
  REQUIRE(optim::AdamW(net->parameters()).options(0).weight_decay == 1e-2);
  REQUIRE(optim::AdamW(net->parameters(), {.lr = 1e-3}).options(0).weight_decay == 1e-2);
  REQUIRE(optim::AdamW(net->parameters(), {.weight_decay = 0}).options(0).weight_decay == 0);
  REQUIRE(optim::AdamW(net->parameters(), {.weight_decay = 0.5}).options(0).weight_decay == 0.5);
  REQUIRE(optim::Adam(net->parameters()).options(0).weight_decay == 0);
  REQUIRE(optim::Adam(net->parameters()).type_name() == "Adam");
  REQUIRE(optim::AdamW(net->parameters()).type_name() == "AdamW");
}

TEST_CASE("zero_grad drops gradients by default and zero-fills with set_to_none = false", "[optim]") {
  auto net = std::make_shared<TinyMLP>(3, 4, 2);
  optim::SGD opt(net->parameters(), {.lr = 0.1});
  mse(net->forward(Tensor::randn({2, 3})), Tensor::randn({2, 2})).backward();
  for (const Tensor& p : net->parameters()) REQUIRE(p.grad().defined());
  opt.zero_grad(false);
  for (const Tensor& p : net->parameters()) {
    REQUIRE(p.grad().defined());
    for (float g : p.grad().to_vector<float>()) REQUIRE(g == 0);
  }
  opt.zero_grad();
  for (const Tensor& p : net->parameters()) REQUIRE_FALSE(p.grad().defined());
}

TEST_CASE("parameters without a gradient are skipped and keep no state", "[optim]") {
  Tensor used = Tensor::ones({3}).requires_grad_();
  Tensor unused = Tensor::ones({2}).requires_grad_();
  optim::Adam opt(std::vector<Tensor>{used, unused}, {.lr = 0.1});
  (used * used).sum().backward();
  opt.step();
  REQUIRE(opt.state(0).count("exp_avg") == 1);
  REQUIRE(opt.state(0).at("step").item<int64_t>() == 1);
  REQUIRE(opt.state(1).empty());
  REQUIRE(unused.to_vector<float>() == std::vector<float>{1, 1});
}

TEST_CASE("parameter groups take their own options or the defaults", "[optim]") {
  auto net = std::make_shared<TinyMLP>(3, 4, 2);
  optim::SGD opt({{net->fc1->parameters(), optim::SGDOptions{.lr = 0.5}}, {net->fc2->parameters()}},
                 optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
  REQUIRE(opt.num_param_groups() == 2);
  REQUIRE(opt.lr(0) == 0.5);
  REQUIRE(opt.options(0).momentum == 0);
  REQUIRE(opt.lr(1) == 0.01);
  REQUIRE(opt.options(1).momentum == 0.9);
  REQUIRE(opt.parameters().size() == 4);
  // A parameter in two groups is refused, naming the group.
  const std::string text = error_text([&] { opt.add_param_group({net->fc1->parameters()}); });
  REQUIRE_THAT(text, Catch::Contains("group 2") && Catch::Contains("appears twice"));
}

TEST_CASE("an update through a non-contiguous parameter equals the contiguous update", "[optim]") {
  Tensor base = Tensor::randn({4, 3});
  Tensor strided = base.clone().transpose(0, 1).requires_grad_();  // a leaf view, [3, 4]
  Tensor dense = base.clone().transpose(0, 1).contiguous().requires_grad_();
  REQUIRE_FALSE(strided.is_contiguous());
  optim::Adam a(std::vector<Tensor>{strided}, {.lr = 0.1});
  optim::Adam b(std::vector<Tensor>{dense}, {.lr = 0.1});
  for (int i = 0; i < 3; ++i) {
    for (auto* opt : {&a, &b}) opt->zero_grad();
    (strided * strided * strided).sum().backward();
    (dense * dense * dense).sum().backward();
    a.step();
    b.step();
  }
  REQUIRE(strided.to_vector<float>() == dense.to_vector<float>());
}

TEST_CASE("a step between forward and backward is caught by autograd", "[optim]") {
  // The update writes parameters in place, so a graph that saved them must refuse to run.
  Tensor w = Tensor::randn({3}).requires_grad_();
  optim::SGD opt(std::vector<Tensor>{w}, {.lr = 0.1});
  (w * w).sum().backward();
  Tensor loss = (w * w).sum();
  opt.step();
  REQUIRE_THAT(error_text([&] { loss.backward(); }), Catch::Contains("modified in place"));
}

TEST_CASE("optimizer constructors check their arguments", "[optim]") {
  Tensor p = Tensor::randn({2}).requires_grad_();
  REQUIRE_THAT(error_text([] { optim::SGD(std::vector<Tensor>{}); }),
               Catch::Contains("empty parameter list"));
  REQUIRE_THAT(error_text([&] { optim::SGD(std::vector<Tensor>{p * 2}); }),
               Catch::Contains("not a leaf"));
  REQUIRE_THAT(error_text([&] { optim::SGD(std::vector<Tensor>{p, p}); }),
               Catch::Contains("appears twice"));
  REQUIRE_THAT(error_text([] { optim::SGD(std::vector<Tensor>{Tensor::arange(3)}); }),
               Catch::Contains("i64"));
  REQUIRE_THAT(error_text([&] { optim::SGD(std::vector<Tensor>{p}, {.lr = 0.1, .nesterov = true}); }),
               Catch::Contains("nesterov needs momentum > 0"));
  REQUIRE_THAT(error_text([&] { optim::Adam(std::vector<Tensor>{p}, {.lr = -1}); }),
               Catch::Contains("lr must be >= 0, got -1"));
  REQUIRE_THAT(error_text([&] { optim::Adam(std::vector<Tensor>{p}, {.betas = {0.9, 1.0}}); }),
               Catch::Contains("betas[1] must be in [0, 1), got 1"));
  // Options changed after construction are checked at the next step.
  optim::SGD opt(std::vector<Tensor>{p}, {.lr = 0.1});
  opt.options(0).momentum = -0.5;
  REQUIRE_THAT(error_text([&] { opt.step(); }), Catch::Contains("SGD: group 0: momentum must be >= 0"));
}

TEST_CASE("an optimizer state dict names its tensors and options", "[optim]") {
  auto net = std::make_shared<TinyMLP>(3, 4, 2);
  optim::Adam opt(net->parameters(), {.lr = 0.003, .betas = {0.8, 0.95}, .amsgrad = true});
  train_step(*net, opt);
  train_step(*net, opt);
  const optim::StateDict s = opt.state_dict();
  REQUIRE(s.metadata.at("type") == "Adam");
  REQUIRE(s.metadata.at("param_groups") == "1");
  REQUIRE(s.metadata.at("param_groups.0.params") == "4");
  REQUIRE(s.metadata.at("param_groups.0.lr") == "0.003");
  REQUIRE(s.metadata.at("param_groups.0.betas") == "0.8,0.95");
  REQUIRE(s.metadata.at("param_groups.0.amsgrad") == "true");
  std::map<std::string, Tensor> tensors(s.tensors.begin(), s.tensors.end());
  REQUIRE(tensors.size() == 16);  // 4 parameters x (step, exp_avg, exp_avg_sq, max_exp_avg_sq)
  REQUIRE(tensors.at("state.0.step").dtype() == DType::i64);
  REQUIRE(tensors.at("state.0.step").item<int64_t>() == 2);
  REQUIRE(tensors.at("state.3.exp_avg_sq").shape() == net->fc2->bias.shape());
}

TEST_CASE("an optimizer resumes exactly from a saved state dict", "[optim]") {
  for (const char* kind : {"SGD", "Adam", "AdamW"}) {
    SECTION(kind) {
      auto make = [&](nn::Module& net) -> std::unique_ptr<optim::Optimizer> {
        if (std::string(kind) == "SGD")
          return std::make_unique<optim::SGD>(net.parameters(), optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0.2});
        if (std::string(kind) == "Adam")
          return std::make_unique<optim::Adam>(net.parameters(), optim::AdamOptions{.lr = 0.01, .amsgrad = true});
        return std::make_unique<optim::AdamW>(net.parameters(), optim::AdamOptions{.lr = 0.01});
      };
      manual_seed(3);
      auto straight = std::make_shared<TinyMLP>(3, 4, 2);
      auto resumed = std::make_shared<TinyMLP>(3, 4, 2);
      resumed->load_state_dict(straight->state_dict());
      auto opt_a = make(*straight);
      for (int i = 0; i < 3; ++i) train_step(*straight, *opt_a);
      // Save after 3 steps, change the live options, then restore into a fresh optimizer.
      TempDir dir("kiln-optim");
      const std::string path = dir.file("optimizer.safetensors");
      const optim::StateDict saved = opt_a->state_dict();
      save_safetensors(path, saved.tensors, saved.metadata);
      resumed->load_state_dict(straight->state_dict());
      auto opt_b = make(*resumed);
      opt_b->set_lr(0, 123.0);
      opt_b->load_state_dict(read_safetensors(path));
      REQUIRE(opt_b->lr(0) == opt_a->lr(0));
      for (int i = 0; i < 4; ++i) {
        train_step(*straight, *opt_a);
        train_step(*resumed, *opt_b);
      }
      REQUIRE(flat_params(*straight) == flat_params(*resumed));
    }
  }
}

TEST_CASE("loading a mismatched optimizer state is an error that changes nothing", "[optim]") {
  auto net = std::make_shared<TinyMLP>(3, 4, 2);
  optim::Adam opt(net->parameters(), {.lr = 0.01});
  train_step(*net, opt);
  const optim::StateDict good = opt.state_dict();
  optim::Adam fresh(net->parameters(), {.lr = 0.5});
  auto rejects = [&](optim::StateDict s, const std::string& expected) {
    INFO(expected);
    REQUIRE_THAT(error_text([&] { fresh.load_state_dict(s); }), Catch::Contains(expected));
    REQUIRE(fresh.lr(0) == 0.5);
    REQUIRE(fresh.state(0).empty());
  };
  optim::StateDict s = good;
  s.metadata["type"] = "SGD";
  rejects(s, "type: the state was saved by SGD, but this is Adam");
  s = good;
  s.metadata["param_groups"] = "2";
  rejects(s, "param_groups: the state has 2 parameter groups, but this optimizer has 1");
  s = good;
  s.metadata["param_groups.0.params"] = "3";
  rejects(s, "param_groups.0.params");
  s = good;
  s.metadata["param_groups.0.eps"] = "tiny";
  rejects(s, "param_groups.0.eps: expected a number, got 'tiny'");
  s = good;
  s.metadata.erase("param_groups.0.amsgrad");
  rejects(s, "param_groups.0.amsgrad: missing");
  s = good;
  // The last tensor: shape mismatch against parameter 3 (fc2.bias, [2]).
  for (auto& [name, t] : s.tensors)
    if (name == "state.3.exp_avg") t = Tensor::zeros({5});
  rejects(s, "state.3.exp_avg: shape [5] does not match parameter 3's shape [2]");
  s = good;
  s.tensors.emplace_back("state.9.exp_avg", Tensor::zeros({2}));
  rejects(s, "parameter 9 does not exist");
  s = good;
  s.tensors.emplace_back("state.0.momentum_buffer", Tensor::zeros({4, 3}));
  rejects(s, "Adam keeps no state named 'momentum_buffer'");
  s = good;
  for (auto& [name, t] : s.tensors)
    if (name == "state.0.step") t = Tensor::scalar(1.0, DType::f32);
  rejects(s, "state.0.step: expected an i64 scalar");
}
