// The Python of docs/checkpoints.md, run against files kiln writes and reads:
// examples/python/kiln_safetensors.py (standard library only) and torch_interop.py (PyTorch).
#include <cstdlib>
#include <string>

#include "../temp_dir.h"
#include "../test_helpers.h"

using namespace kiln;
using kiln::testing::TempDir;

namespace {

const std::string kExamples = std::string(KILN_TEST_DATA) + "/../../examples/python";

std::shared_ptr<nn::Sequential> make_model() {
  return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 8),
                                          std::make_shared<nn::ReLU>(),
                                          std::make_shared<nn::Linear>(8, 2));
}

void require_same(const NamedTensors& got, const NamedTensors& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(want[i].first);
    REQUIRE(got[i].first == want[i].first);
    REQUIRE(got[i].second.dtype() == want[i].second.dtype());
    kiln::testing::require_equal(got[i].second, want[i].second);
  }
}

}  // namespace

TEST_CASE("the standard-library Python reader and writer copy a kiln file exactly",
          "[docs][interop]") {
  TempDir dir("kiln-py");
  manual_seed(3);
  NamedTensors tensors = make_model()->state_dict();
  tensors.emplace_back("f64", Tensor::randn({3, 2, 5}, DType::f64));
  tensors.emplace_back("i64", Tensor::arange(-4, 7, 1, DType::i64));
  tensors.emplace_back("scalar", Tensor::scalar(2.5));
  tensors.emplace_back("empty", Tensor::zeros({0, 3}));
  const Metadata metadata{{"epoch", "3"}, {"note", "caf\xc3\xa9 \"quoted\""}};
  save_safetensors(dir.file("kiln.safetensors"), tensors, metadata);

  const std::string command = "python3 '" + kExamples + "/kiln_safetensors.py' copy '" +
                              dir.file("kiln.safetensors") + "' '" + dir.file("py.safetensors") + "'";
  REQUIRE(std::system(command.c_str()) == 0);
  const SafetensorsContents back = read_safetensors(dir.file("py.safetensors"));
  require_same(back.tensors, tensors);
  REQUIRE(back.metadata == metadata);
}

TEST_CASE("PyTorch loads a kiln model, and kiln loads what PyTorch trained", "[docs][interop]") {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0) {
    WARN("skipped: /usr/bin/python3 with torch is not available (scripts/install-deps.sh --torch)");
    return;
  }
  TempDir dir("kiln-torch");
  manual_seed(4);
  auto model = make_model();
  save_safetensors(dir.file("kiln.safetensors"), model->state_dict());
  const std::string command = "cd '" + kExamples + "' && /usr/bin/python3 torch_interop.py '" +
                              dir.file("kiln.safetensors") + "' '" +
                              dir.file("torch.safetensors") + "'";
  REQUIRE(std::system(command.c_str()) == 0);

  // The same SGD step in kiln, from the same weights: loss = mean(model(x)^2), p -= 0.1 dL/dp.
  Tensor inputs = Tensor::arange(12).to(DType::f32).reshape({3, 4}) / 10.0;
  Tensor loss = model->forward(inputs).pow(2).mean();
  loss.backward();
  {
    NoGradGuard no_grad;
    for (Tensor& p : model->parameters()) p.add_(p.grad(), -0.1);
  }
  auto from_torch = make_model();
  from_torch->load_state_dict(load_safetensors(dir.file("torch.safetensors")));  // strict
  const NamedTensors want = model->state_dict(), got = from_torch->state_dict();
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(want[i].first);
    KILN_REQUIRE_CLOSE(got[i].second, want[i].second, 1e-6, 1e-5);
  }
  REQUIRE(read_safetensors(dir.file("torch.safetensors")).metadata.at("written_by") ==
          "torch_interop.py");
}
