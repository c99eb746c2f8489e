// How optimizers, schedulers and checkpoints write numbers into safetensors metadata (a map of
// strings): doubles in their shortest form that parses back to the same bits, integers in decimal,
// booleans as "true"/"false", lists comma-separated. Readers name the key on any error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <kiln/core/safetensors.h>

namespace kiln::optim::state_format {

/// The shortest text that parses back to the same double: "0.1", "1e-05".
std::string format_double(double value);
/// Decimal.
std::string format_int(int64_t value);
/// Decimal.
std::string format_uint(uint64_t value);
/// "true" or "false".
std::string format_bool(bool value);
/// format_double of each, comma-separated: "0.9,0.999".
std::string format_doubles(const std::vector<double>& values);
/// Decimal, comma-separated: "30,80".
std::string format_ints(const std::vector<int64_t>& values);

/// metadata[key] parsed as one value; `where` (e.g. "checkpoint.safetensors: optimizer: ") prefixes
/// the error, which names the key and quotes the text.
const std::string& read_text(const Metadata& metadata, const std::string& key, const std::string& where);
/// metadata[key] as a double (errors as read_text).
double read_double(const Metadata& metadata, const std::string& key, const std::string& where);
/// metadata[key] as an int64_t.
int64_t read_int(const Metadata& metadata, const std::string& key, const std::string& where);
/// metadata[key] as a uint64_t.
uint64_t read_uint(const Metadata& metadata, const std::string& key, const std::string& where);
/// metadata[key] as "true" or "false".
bool read_bool(const Metadata& metadata, const std::string& key, const std::string& where);
/// metadata[key] as comma-separated doubles.
std::vector<double> read_doubles(const Metadata& metadata, const std::string& key, const std::string& where);
/// metadata[key] as comma-separated integers.
std::vector<int64_t> read_ints(const Metadata& metadata, const std::string& key, const std::string& where);

/// The entries whose key starts with `prefix`, with the prefix removed.
Metadata strip_prefix(const Metadata& metadata, const std::string& prefix);
/// Adds every entry of `from` to `to` under `prefix` + key.
void add_prefix(Metadata& to, const Metadata& from, const std::string& prefix);

}  // namespace kiln::optim::state_format
