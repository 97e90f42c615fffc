// Option parsing and help text (see options.h).
#include "cli/options.h"

#include <charconv>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace upcycle::cli {
namespace {

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty())
    throw Error("invalid value '" + text + "' for --" + flag + ": expected " +
                (std::is_floating_point_v<T> ? "a number" : std::is_signed_v<T> ? "an integer" : "a non-negative integer"));
  return value;
}

std::string format_double(double v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}

}  // namespace

OptionSet::OptionSet(std::string command, std::string usage, std::string summary)
    : command_(std::move(command)), usage_(std::move(usage)), summary_(std::move(summary)) {}

OptionSet::Option& OptionSet::push(std::string name, std::string metavar, std::string help) {
  Option o;
  o.name = std::move(name);
  o.metavar = std::move(metavar);
  o.help = std::move(help);
  options_.push_back(std::move(o));
  return options_.back();
}

void OptionSet::add_flag(std::string name, std::string help, bool* target) {
  Option& o = push(std::move(name), "", std::move(help));
  o.is_flag = true;
  o.set = [target](const std::string&) { *target = true; };
  o.show = [] { return std::string(); };
  o.json = [target] { return Json(*target); };
}

void OptionSet::add(std::string name, std::string metavar, std::string help, std::string* target) {
  Option& o = push(std::move(name), std::move(metavar), std::move(help));
  o.set = [target](const std::string& v) { *target = v; };
  o.show = [target] { return *target; };
  o.json = [target] { return Json(*target); };
}

template <typename T>
void OptionSet::add_number(std::string name, std::string metavar, std::string help, T* target) {
  Option& o = push(name, std::move(metavar), std::move(help));
  o.set = [target, name](const std::string& v) { *target = parse_number<T>(name, v); };
  if constexpr (std::is_floating_point_v<T>)
    o.show = [target] { return format_double(*target); };
  else
    o.show = [target] { return std::to_string(*target); };
  o.json = [target] { return Json(*target); };
}

void OptionSet::add(std::string name, std::string metavar, std::string help, int64_t* target) {
  add_number(std::move(name), std::move(metavar), std::move(help), target);
}
void OptionSet::add(std::string name, std::string metavar, std::string help, uint64_t* target) {
  add_number(std::move(name), std::move(metavar), std::move(help), target);
}
void OptionSet::add(std::string name, std::string metavar, std::string help, double* target) {
  add_number(std::move(name), std::move(metavar), std::move(help), target);
}

void OptionSet::add_choice(std::string name, std::vector<std::string> choices, std::string help, std::string* target) {
  std::string metavar;
  for (size_t i = 0; i < choices.size(); ++i) metavar += (i ? "|" : "") + choices[i];
  Option& o = push(name, metavar, std::move(help));
  o.choices = choices;
  o.set = [target, name, choices, metavar](const std::string& v) {
    for (const auto& c : choices)
      if (c == v) {
        *target = v;
        return;
      }
    throw Error("invalid value '" + v + "' for --" + name + ": expected one of " + metavar);
  };
  o.show = [target] { return *target; };
  o.json = [target] { return Json(*target); };
}

void OptionSet::add_positional(std::string name, std::string help, std::string* target, Required required) {
  add(std::move(name), "", std::move(help), target);
  options_.back().positional = true;
  options_.back().required = required;
}

void OptionSet::add_list(std::string name, std::string metavar, std::string help, std::vector<std::string>* target) {
  Option& o = push(std::move(name), std::move(metavar) + "…", std::move(help));
  o.is_list = true;
  o.set = [target](const std::string& v) { target->push_back(v); };
  o.show = [target] {
    std::string shown;
    for (const auto& v : *target) shown += (shown.empty() ? "" : " ") + v;
    return shown;
  };
  o.json = [target] { return Json(*target); };
}

void OptionSet::add_epilog(std::string text) { epilogs_.push_back(std::move(text)); }

OptionSet::Option* OptionSet::find(std::string_view name) {
  for (auto& o : options_)
    if (!o.positional && o.name == name) return &o;
  return nullptr;
}

bool OptionSet::given(std::string_view name) const {
  for (const auto& o : options_)
    if (o.name == name) return o.seen;
  return false;
}

void OptionSet::set_default(std::string_view name, const std::string& value) {
  Option* o = find(name);
  if (!o) throw Error("unknown option '--" + std::string(name) + "' for '" + command_ + "'");
  o->set(value);
}

bool OptionSet::parse(const std::vector<std::string>& args) {
  std::vector<std::string> positionals;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (arg == "--") {
      positionals.insert(positionals.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      if (arg.size() > 1 && arg[0] == '-') throw Error("unknown option '" + arg + "' for '" + command_ + "' (see upcycle " + command_ + " --help)");
      positionals.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    Option* o = find(name);
    if (!o) throw Error("unknown option '--" + name + "' for '" + command_ + "' (see upcycle " + command_ + " --help)");
    if (o->seen && !o->is_list) throw Error("option '--" + name + "' given twice");
    if (o->is_flag) {
      if (inline_value) throw Error("option '--" + name + "' takes no value");
    } else if (!inline_value) {
      if (i + 1 >= args.size()) throw Error("option '--" + name + "' needs a value (" + o->metavar + ")");
      value = args[++i];
    }
    if (o->is_list && !inline_value) {
      if (value.rfind("--", 0) == 0) throw Error("option '--" + name + "' needs a value (" + o->metavar + ")");
      // The list runs to the next option (or `--`).
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
        o->set(value);
        value = args[++i];
      }
    }
    o->set(value);
    o->seen = true;
  }
  size_t next = 0;
  for (auto& o : options_) {
    if (!o.positional) continue;
    if (next < positionals.size()) {
      o.set(positionals[next++]);
      o.seen = true;
    } else if (o.required == Required::kYes) {
      throw Error("missing " + o.name + " (usage: " + usage_ + ")");
    }
  }
  if (next < positionals.size()) throw Error("unexpected argument '" + positionals[next] + "' (usage: " + usage_ + ")");
  return true;
}

std::string OptionSet::help() const {
  std::string out = "usage: " + usage_ + "\n\n" + summary_ + "\n";
  bool any_positional = false;
  for (const auto& o : options_) any_positional |= o.positional;
  if (any_positional) {
    out += "\narguments:\n";
    for (const auto& o : options_)
      if (o.positional) out += "  " + o.name + "\n      " + o.help + "\n";
  }
  out += "\noptions:\n";
  for (const auto& o : options_) {
    if (o.positional) continue;
    out += "  --" + o.name + (o.metavar.empty() ? "" : " " + o.metavar) + "\n      " + o.help;
    std::string shown = o.show();
    if (!o.is_flag && !shown.empty()) out += " [default: " + shown + "]";
    out += "\n";
  }
  out += "  --help\n      Print this help and exit.\n";
  for (const auto& e : epilogs_) out += "\n" + e + "\n";
  return out;
}

Json OptionSet::to_json() const {
  Json j = Json::object();
  for (const auto& o : options_) j[o.name] = o.json();
  return j;
}

DType dtype_from_choice(std::string_view choice) {
  if (choice == "f32") return DType::kF32;
  if (choice == "f16") return DType::kF16;
  UPCYCLE_CHECK(choice == "bf16", "dtype choice must be f32, f16 or bf16");
  return DType::kBF16;
}

}  // namespace upcycle::cli
