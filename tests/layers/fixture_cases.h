// Helpers for the PyTorch fixtures of tests/tools/gen_basic_layers.py, whose tensors are named
// "<case>.<what>".
#pragma once

#include <map>
#include <set>
#include <string>

#include <kiln/kiln.h>

namespace kiln::testing {

/// The case names of a fixture: every "<case>" that has a "<case>.<marker>" tensor.
inline std::set<std::string> fixture_cases(const std::map<std::string, Tensor>& fixture,
                                           const std::string& marker = "y") {
  std::set<std::string> cases;
  const std::string suffix = "." + marker;
  for (const auto& [key, tensor] : fixture) {
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
      cases.insert(key.substr(0, key.size() - suffix.size()));
  }
  return cases;
}

/// fixture["<name>.<what>"], or a test failure naming the missing key.
inline Tensor fixture_tensor(const std::map<std::string, Tensor>& fixture, const std::string& name,
                             const std::string& what) {
  auto it = fixture.find(name + "." + what);
  if (it == fixture.end()) throw Error("fixture has no tensor '" + name + "." + what + "'");
  return it->second;
}

/// A fresh leaf copy of a fixture tensor that requires grad.
inline Tensor leaf_copy(const Tensor& t) { return t.clone().detach().requires_grad_(); }

}  // namespace kiln::testing
