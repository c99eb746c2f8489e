// One training run of kiln-cifar10: build the model, train for some epochs with checkpoints, and
// evaluate after each epoch. Used once per run by the app, and once per (norm, batch) by a sweep.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <kiln/datasets/dataset.h>

namespace kiln::apps {

struct RunConfig {
  std::string model = "vgg8";        // vgg8 | vgg16
  std::string norm = "gn";           // see models.h
  int64_t groups = 32;
  int64_t batch = 32;
  int64_t epochs = 3;
  std::string optimizer = "sgd";     // sgd | adam
  double lr = 0.0;                   // the rate actually used (already scaled for the batch)
  double momentum = 0.9;
  double weight_decay = 5e-4;
  std::string schedule = "cosine";   // none | cosine | step
  uint64_t seed = 0;
  bool augment = true;               // random crop and flip (CIFAR-10) in training
  std::string dataset = "cifar10";   // cifar10 | fashion-mnist: picks the normalization
  std::string out;                   // directory for checkpoint, metrics.csv, curves.svg
  bool resume = false;               // continue from out/checkpoint.safetensors if it is there
  int64_t checkpoint_steps = 0;      // also save every this many steps (0: once per epoch)
  int64_t stop_after_steps = 0;      // save and stop after this many steps in all (0: run to the end)
  bool quiet = false;                // no progress lines (sweeps print their own)
  std::string label;                 // shown in progress lines, e.g. "gn b=8"
};

struct EpochMetrics {
  int64_t epoch = 0;                 // 1-based
  double train_loss = 0, train_accuracy = 0;
  double test_loss = 0, test_accuracy = 0;
  double images_per_second = 0, seconds = 0;
};

struct RunResult {
  std::vector<EpochMetrics> epochs;
  bool stopped_early = false;        // stop_after_steps was reached; --resume continues
  double final_test_error() const {
    return epochs.empty() ? 1.0 : 1.0 - epochs.back().test_accuracy;
  }
};

/// Trains per `config` on `train` and evaluates on `test` after each epoch. Writes
/// out/checkpoint.safetensors (atomically, every epoch), out/metrics.csv and out/curves.svg.
RunResult train_run(const RunConfig& config, const data::Dataset& train, const data::Dataset& test);

/// The CSV text of metrics (a header line and one line per epoch).
std::string metrics_csv(const std::vector<EpochMetrics>& epochs);
/// Parses metrics_csv's output; throws kiln::Error on malformed text.
std::vector<EpochMetrics> parse_metrics_csv(const std::string& text);

}  // namespace kiln::apps
