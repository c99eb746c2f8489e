#include <kiln/optim/checkpoint.h>

#include <set>

#include <kiln/optim/state_format.h>

namespace kiln::optim {

using namespace state_format;

namespace {

constexpr const char* kFormatKey = "kiln.checkpoint";
constexpr const char* kFormatVersion = "1";
constexpr const char* kDefaultGenerator = "default";

std::vector<std::pair<std::string, Generator*>> all_generators(const TrainingState& state) {
  std::vector<std::pair<std::string, Generator*>> out{{kDefaultGenerator, &default_generator()}};
  std::set<std::string> names{kDefaultGenerator};
  for (const auto& [name, gen] : state.generators) {
    KILN_CHECK(gen != nullptr, "checkpoint: generator '", name, "' is null");
    KILN_CHECK(!name.empty() && names.insert(name).second, "checkpoint: the generator name '", name,
               "' is empty, reserved for kiln::default_generator(), or given twice");
    out.emplace_back(name, gen);
  }
  return out;
}

// Runs fn, prefixing any kiln::Error with the file name.
template <class Fn>
void in_file(const std::string& path, Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    KILN_FAIL(path, ": ", e.what());
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainingState& state) {
  KILN_CHECK(state.model != nullptr, "save_checkpoint: TrainingState.model is null");
  NamedTensors tensors;
  Metadata metadata{{kFormatKey, kFormatVersion},
                    {"epoch", format_int(state.epoch)},
                    {"step", format_int(state.step)}};
  for (const auto& [name, t] : state.model->state_dict()) tensors.emplace_back("model." + name, t);
  if (state.optimizer) {
    StateDict opt = state.optimizer->state_dict();
    for (const auto& [name, t] : opt.tensors) tensors.emplace_back("optimizer." + name, t);
    add_prefix(metadata, opt.metadata, "optimizer.");
  }
  if (state.scheduler) add_prefix(metadata, state.scheduler->state_dict(), "scheduler.");
  for (const auto& [name, gen] : all_generators(state)) {
    metadata["rng." + name + ".seed"] = format_uint(gen->seed());
    metadata["rng." + name + ".offset"] = format_uint(gen->offset());
  }
  tensors.emplace_back("data_position",
                       Tensor::from_vector(state.data_position, {static_cast<int64_t>(state.data_position.size())}));
  add_prefix(metadata, state.extra, "extra.");
  save_safetensors(path, tensors, metadata);
}

void load_checkpoint(const std::string& path, TrainingState& state) {
  KILN_CHECK(state.model != nullptr, "load_checkpoint: TrainingState.model is null");
  const SafetensorsContents contents = read_safetensors(path);
  const Metadata& m = contents.metadata;
  const std::string where = path + ": ";

  auto format = m.find(kFormatKey);
  KILN_CHECK(format != m.end(), where, kFormatKey, ": missing; this is not a kiln training "
             "checkpoint (load plain state dicts with load_safetensors)");
  KILN_CHECK(format->second == kFormatVersion, where, kFormatKey, ": layout version '",
             format->second, "' is not supported (expected ", kFormatVersion, ")");

  // Sort the tensors by owner.
  NamedTensors model;
  StateDict optimizer;
  Tensor data_position;
  for (const auto& [name, t] : contents.tensors) {
    if (name.compare(0, 6, "model.") == 0) {
      model.emplace_back(name.substr(6), t);
    } else if (name.compare(0, 10, "optimizer.") == 0) {
      optimizer.tensors.emplace_back(name.substr(10), t);
    } else if (name == "data_position") {
      data_position = t;
    } else {
      KILN_FAIL(where, "tensor '", name, "': not part of a training checkpoint");
    }
  }
  optimizer.metadata = strip_prefix(m, "optimizer.");
  const Metadata scheduler = strip_prefix(m, "scheduler.");

  // Check everything before changing anything.
  const int64_t epoch = read_int(m, "epoch", where);
  const int64_t step = read_int(m, "step", where);
  KILN_CHECK(data_position.defined(), where, "data_position: missing");
  KILN_CHECK(data_position.dtype() == DType::i64 && data_position.dim() == 1, where,
             "data_position: expected an i64 vector, got ", dtype_name(data_position.dtype()),
             " of shape ", data_position.shape());
  std::vector<std::pair<Generator*, std::pair<uint64_t, uint64_t>>> generators;
  for (const auto& [name, gen] : all_generators(state)) {
    const std::string key = "rng." + name;
    generators.push_back({gen, {read_uint(m, key + ".seed", where), read_uint(m, key + ".offset", where)}});
  }
  if (state.optimizer) {
    KILN_CHECK(!optimizer.metadata.empty(), where, "optimizer: the checkpoint holds no optimizer state");
    in_file(path, [&] { state.optimizer->validate_state_dict(optimizer); });
  }
  if (state.scheduler) {
    KILN_CHECK(!scheduler.empty(), where, "scheduler: the checkpoint holds no scheduler state");
    in_file(path, [&] { state.scheduler->validate_state_dict(scheduler); });
  }
  // The model checks its keys and shapes before it copies anything.
  in_file(path, [&] { state.model->load_state_dict(model, /*strict=*/true); });

  // Nothing below can fail.
  if (state.optimizer) state.optimizer->load_state_dict(optimizer);
  if (state.scheduler) state.scheduler->load_state_dict(scheduler);
  for (const auto& [gen, seed_offset] : generators) gen->set_state(seed_offset.first, seed_offset.second);
  state.epoch = epoch;
  state.step = step;
  state.data_position = data_position.to_vector<int64_t>();
  state.extra = strip_prefix(m, "extra.");
}

}  // namespace kiln::optim
