// Training checkpoints: everything a training loop needs to continue exactly where it stopped,
// in one safetensors file that any safetensors reader opens.
//
//   optim::TrainingState state{.model = net.get(), .optimizer = &opt, .scheduler = &sched,
//                              .generators = {{"data", &data_gen}}};
//   ...
//   state.epoch = epoch; state.step = step; state.data_position = {seed, position};
//   optim::save_checkpoint("run/last.safetensors", state);
//   ...                                      // later, in a fresh process, built the same way:
//   optim::load_checkpoint("run/last.safetensors", state);   // restores all, fills epoch, step...
//
// File layout:
//   tensors   "model.<key>"                 the model's state_dict (parameters and buffers)
//             "optimizer.state.<i>.<key>"   the optimizer's per-parameter state
//             "data_position"               i64 [n], the caller's data position, opaque to kiln
//   metadata  "kiln.checkpoint"             "1", the layout version
//             "epoch", "step"
//             "optimizer.<key>"             the optimizer's options (see optim/optimizer.h)
//             "scheduler.<key>"             the scheduler's position and settings
//             "rng.<name>.seed", "rng.<name>.offset"   each generator; "default" is
//                                           kiln::default_generator(), always saved
//             "extra.<key>"                 the caller's strings
//
// The save is atomic (see save_safetensors): a crash leaves the previous checkpoint in place.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <kiln/core/generator.h>
#include <kiln/core/safetensors.h>
#include <kiln/layers/module.h>
#include <kiln/optim/lr_scheduler.h>
#include <kiln/optim/optimizer.h>

namespace kiln::optim {

/// What a checkpoint saves and restores. The pointers name live objects (the model is required;
/// optimizer and scheduler may be null); the values are what save writes and load fills in.
struct TrainingState {
  nn::Module* model = nullptr;        ///< the model (required)
  Optimizer* optimizer = nullptr;     ///< the optimizer, or null
  LRScheduler* scheduler = nullptr;   ///< the outermost scheduler, or null
  /// Generators besides kiln::default_generator() (always saved, as "default"), by name.
  std::vector<std::pair<std::string, Generator*>> generators;
  int64_t epoch = 0;  ///< the caller's epoch counter
  int64_t step = 0;   ///< the caller's step counter
  /// Where the data stream stands: whatever the data loader needs to resume its order and
  /// position (a shuffle seed and an index, say). kiln stores it and gives it back.
  std::vector<int64_t> data_position;
  /// Free-form strings saved alongside (a run name, a git commit, ...).
  Metadata extra;
};

/// Writes the model, optimizer and scheduler state, the generators, epoch, step, data position
/// and extra strings to `path`, atomically.
void save_checkpoint(const std::string& path, const TrainingState& state);

/// Restores everything save_checkpoint wrote into the objects `state` points at, and sets its
/// epoch, step, data_position and extra. The whole file is checked against the objects before any
/// of them changes: on error (a kiln::Error naming the file and the field), none has. The default
/// generator and each generator in `state.generators` must be in the file.
void load_checkpoint(const std::string& path, TrainingState& state);

}  // namespace kiln::optim
