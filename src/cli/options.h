// Command-line options, declared once. Each subcommand has an options struct whose fields carry
// their defaults; binding a field here gives it its flag name, metavar and help, and the same
// declaration drives parsing, `--help` text (with the default shown) and to_json() for run records.
// Rules: long `--kebab-case` flags only, `--flag VALUE` or `--flag=VALUE` (list options: `--flag A B…`);
// unknown flags, missing
// values, malformed numbers and surplus positionals are user errors (exit 2).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"

namespace upcycle::cli {

enum class Required { kNo, kYes };

class OptionSet {
 public:
  OptionSet(std::string command, std::string usage, std::string summary);

  void add_flag(std::string name, std::string help, bool* target);
  void add(std::string name, std::string metavar, std::string help, std::string* target);
  void add(std::string name, std::string metavar, std::string help, int64_t* target);
  void add(std::string name, std::string metavar, std::string help, uint64_t* target);
  void add(std::string name, std::string metavar, std::string help, double* target);
  // A string option restricted to `choices` (listed in --help and in the error for a bad value).
  void add_choice(std::string name, std::vector<std::string> choices, std::string help, std::string* target);
  void add_positional(std::string name, std::string help, std::string* target, Required required);
  // A list option: `--name A B C` takes every following argument up to the next `--option`, and
  // repeating the flag appends (`--name A --name B`). At least one value per occurrence.
  void add_list(std::string name, std::string metavar, std::string help, std::vector<std::string>* target);
  // Extra paragraphs printed after the option list (examples, notes).
  void add_epilog(std::string text);

  // Parses args (without the program and command names). Returns false when --help was given (help
  // has been printed to stdout); throws Error on bad input.
  bool parse(const std::vector<std::string>& args);
  std::string help() const;
  Json to_json() const;  // every option's current value, for records of what ran
  bool given(std::string_view name) const;  // was this flag present on the command line
  // Sets an option's value without marking it given (presets: explicit flags parsed later win).
  // Throws Error for an unknown option or a bad value.
  void set_default(std::string_view name, const std::string& value);

 private:
  struct Option {
    std::string name, metavar, help;
    std::vector<std::string> choices;
    bool is_flag = false;
    bool is_list = false;
    bool positional = false;
    Required required = Required::kNo;
    std::function<void(const std::string&)> set;
    std::function<std::string()> show;
    std::function<Json()> json;
    bool seen = false;
  };
  Option* find(std::string_view name);
  Option& push(std::string name, std::string metavar, std::string help);
  template <typename T>
  void add_number(std::string name, std::string metavar, std::string help, T* target);
  std::string command_, usage_, summary_;
  std::vector<Option> options_;
  std::vector<std::string> epilogs_;
};

// The lower-case spellings `--dtype` choices use ("f32", "bf16", "f16"); other values are a bug, since
// add_choice has already rejected them.
DType dtype_from_choice(std::string_view choice);

}  // namespace upcycle::cli
