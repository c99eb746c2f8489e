// The bad-input battery's one check: a call must throw kiln::Error with a given message.
//
// Each case also becomes a row of the table in docs/reliability.md ("## Bad input"). When
// KILN_BAD_INPUT_TABLE names a file, every checked case appends "class<TAB>input<TAB>message" to
// it, with the temporary directory in paths shown as <tmp>; tests/reliability/bad_input_table.sh
// turns the rows into the table, and checks that the doc matches.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <kiln/core/error.h>

namespace kiln::testing {

/// `message` with every path under the system temp dir cut down to "<tmp>/rest", and tabs and
/// newlines escaped, so a row reads the same on every run and fits on one line.
inline std::string table_text(const std::string& message) {
  const std::string tmp = std::filesystem::temp_directory_path().string();
  std::string out;
  for (size_t i = 0; i < message.size();) {
    if (!tmp.empty() && message.compare(i, tmp.size() + 1, tmp + "/") == 0) {
      // The temp dir and the per-test directory inside it.
      size_t end = message.find_first_of("/ ,:'", i + tmp.size() + 1);
      if (end == std::string::npos) end = message.size();
      out += "<tmp>";
      i = end;
      continue;
    }
    if (message[i] == '\t') {
      out += "\\t";
    } else if (message[i] == '\n') {
      out += "\\n";
    } else {
      out += message[i];
    }
    ++i;
  }
  return out;
}

/// Appends a row for docs/reliability.md when KILN_BAD_INPUT_TABLE is set.
inline void record_bad_input(const std::string& klass, const std::string& input,
                             const std::string& message) {
  const char* table = std::getenv("KILN_BAD_INPUT_TABLE");
  if (table == nullptr || *table == '\0') return;
  std::ofstream out(table, std::ios::app);
  out << klass << '\t' << table_text(input) << '\t' << table_text(message) << '\n';
}

/// REQUIREs that fn throws a kiln::Error whose message satisfies `matcher` (and nothing else:
/// another exception type fails the test), then records the case.
template <class Fn, class Matcher>
void require_bad_input(const std::string& klass, const std::string& input, Fn&& fn,
                       const Matcher& matcher) {
  INFO(klass << ": " << input);
  std::string message;
  bool threw = false;
  try {
    fn();
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  INFO("message: " << message);
  REQUIRE(threw);
  REQUIRE_THAT(message, matcher);
  record_bad_input(klass, input, message);
}

}  // namespace kiln::testing
