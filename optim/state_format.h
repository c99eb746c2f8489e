// How optimizers, schedulers and checkpoints write numbers into safetensors metadata (a map of
// strings): doubles in their shortest form that parses back to the same bits, integers in decimal,
// booleans as "true"/"false", lists comma-separated. Readers name the key on any error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <kiln/core/safetensors.h>

namespace kiln::optim::state_format {

std::string format_double(double value);
std::string format_int(int64_t value);
std::string format_uint(uint64_t value);
std::string format_bool(bool value);
std::string format_doubles(const std::vector<double>& values);
std::string format_ints(const std::vector<int64_t>& values);

/// metadata[key] parsed as one value; `where` (e.g. "checkpoint.safetensors: optimizer: ") prefixes
/// the error, which names the key and quotes the text.
const std::string& read_text(const Metadata& metadata, const std::string& key, const std::string& where);
double read_double(const Metadata& metadata, const std::string& key, const std::string& where);
int64_t read_int(const Metadata& metadata, const std::string& key, const std::string& where);
uint64_t read_uint(const Metadata& metadata, const std::string& key, const std::string& where);
bool read_bool(const Metadata& metadata, const std::string& key, const std::string& where);
std::vector<double> read_doubles(const Metadata& metadata, const std::string& key, const std::string& where);
std::vector<int64_t> read_ints(const Metadata& metadata, const std::string& key, const std::string& where);

/// The entries whose key starts with `prefix`, with the prefix removed.
Metadata strip_prefix(const Metadata& metadata, const std::string& prefix);
/// Adds every entry of `from` to `to` under `prefix` + key.
void add_prefix(Metadata& to, const Metadata& from, const std::string& prefix);

}  // namespace kiln::optim::state_format
