#include <kiln/optim/state_format.h>

#include <charconv>
#include <system_error>

namespace kiln::optim::state_format {

namespace {

template <class T>
std::string to_text(T value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  KILN_CHECK(ec == std::errc(), "state_format: cannot format a number");
  return std::string(buf, end);
}

template <class T>
bool from_text(const std::string& text, T& out) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && end == last && !text.empty();
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  if (text.empty()) return parts;
  size_t begin = 0;
  while (true) {
    size_t comma = text.find(',', begin);
    parts.push_back(text.substr(begin, comma - begin));
    if (comma == std::string::npos) return parts;
    begin = comma + 1;
  }
}

template <class T>
T parse_one(const Metadata& metadata, const std::string& key, const std::string& where,
            const char* expected) {
  const std::string& text = read_text(metadata, key, where);
  T value{};
  KILN_CHECK(from_text(text, value), where, key, ": expected ", expected, ", got '", text, "'");
  return value;
}

template <class T>
std::vector<T> parse_list(const Metadata& metadata, const std::string& key, const std::string& where,
                          const char* expected) {
  const std::string& text = read_text(metadata, key, where);
  std::vector<T> values;
  for (const std::string& part : split(text)) {
    T value{};
    KILN_CHECK(from_text(part, value), where, key, ": expected a comma-separated list of ",
               expected, ", got '", text, "'");
    values.push_back(value);
  }
  return values;
}

}  // namespace

std::string format_double(double value) { return to_text(value); }
std::string format_int(int64_t value) { return to_text(value); }
std::string format_uint(uint64_t value) { return to_text(value); }
std::string format_bool(bool value) { return value ? "true" : "false"; }

std::string format_doubles(const std::vector<double>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += format_double(values[i]);
  }
  return out;
}

std::string format_ints(const std::vector<int64_t>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += format_int(values[i]);
  }
  return out;
}

const std::string& read_text(const Metadata& metadata, const std::string& key, const std::string& where) {
  auto it = metadata.find(key);
  KILN_CHECK(it != metadata.end(), where, key, ": missing");
  return it->second;
}

double read_double(const Metadata& metadata, const std::string& key, const std::string& where) {
  return parse_one<double>(metadata, key, where, "a number");
}

int64_t read_int(const Metadata& metadata, const std::string& key, const std::string& where) {
  return parse_one<int64_t>(metadata, key, where, "an integer");
}

uint64_t read_uint(const Metadata& metadata, const std::string& key, const std::string& where) {
  return parse_one<uint64_t>(metadata, key, where, "a non-negative integer");
}

bool read_bool(const Metadata& metadata, const std::string& key, const std::string& where) {
  const std::string& text = read_text(metadata, key, where);
  KILN_CHECK(text == "true" || text == "false", where, key, ": expected true or false, got '",
             text, "'");
  return text == "true";
}

std::vector<double> read_doubles(const Metadata& metadata, const std::string& key, const std::string& where) {
  return parse_list<double>(metadata, key, where, "numbers");
}

std::vector<int64_t> read_ints(const Metadata& metadata, const std::string& key, const std::string& where) {
  return parse_list<int64_t>(metadata, key, where, "integers");
}

Metadata strip_prefix(const Metadata& metadata, const std::string& prefix) {
  Metadata out;
  for (auto it = metadata.lower_bound(prefix); it != metadata.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.emplace(it->first.substr(prefix.size()), it->second);
  }
  return out;
}

void add_prefix(Metadata& to, const Metadata& from, const std::string& prefix) {
  for (const auto& [key, value] : from) to[prefix + key] = value;
}

}  // namespace kiln::optim::state_format
