// Named tensors in the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: N, little-endian u64][N bytes: JSON header][data]
//   header = {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"key": "value", ...}}            (optional, strings only)
//
// Offsets are relative to the start of the data and the data is row-major, little-endian.
// kiln reads and writes F32, F64 and I64. The reader validates the whole header against the file
// before it allocates anything; a malformed file is a kiln::Error naming the file and the field.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <kiln/core/tensor.h>

namespace kiln {

/// (name, tensor) pairs in a meaningful order (registration order for state dicts).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
/// The string map stored under "__metadata__" in a safetensors header.
using Metadata = std::map<std::string, std::string>;

/// Everything a safetensors file holds.
struct SafetensorsContents {
  NamedTensors tensors;  ///< in file (data offset) order
  Metadata metadata;     ///< the header's __metadata__ (empty when absent)
};

/// Writes `tensors` atomically: a temporary file in the same directory, fsync, rename over `path`,
/// then fsync of the directory. An interrupted save leaves any previous file at `path` intact.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata = {});

/// Reads every tensor of a safetensors file.
NamedTensors load_safetensors(const std::string& path);
/// Reads the tensors and the __metadata__ map.
SafetensorsContents read_safetensors(const std::string& path);

/// The same, from bytes already in memory; `name` is used in error messages.
SafetensorsContents parse_safetensors(const std::string& bytes, const std::string& name);
/// The bytes save_safetensors() writes.
std::string serialize_safetensors(const NamedTensors& tensors, const Metadata& metadata = {});

/// Writes `bytes` to `path` atomically (temp file in the same dir, fsync, rename, fsync dir).
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace kiln
