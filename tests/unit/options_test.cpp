// Option parsing: values, flags, choices, positionals, defaults in --help, and the error contract.
#include <gtest/gtest.h>

#include "cli/options.h"
#include "core/error.h"

namespace upcycle::cli {
namespace {

struct Opts {
  std::string out;
  int64_t layers = 2;
  uint64_t seed = 0;
  double lr = 3e-4;
  std::string dtype = "bf16";
  bool force = false;
};

OptionSet make(Opts& o) {
  OptionSet set("demo", "upcycle demo [options] OUT", "A test command.");
  set.add_positional("OUT", "output", &o.out, Required::kYes);
  set.add("layers", "L", "layer count", &o.layers);
  set.add("seed", "S", "seed", &o.seed);
  set.add("lr", "X", "learning rate", &o.lr);
  set.add_choice("dtype", {"f32", "bf16"}, "dtype", &o.dtype);
  set.add_flag("force", "overwrite", &o.force);
  return set;
}

TEST(Options, ParsesEveryKind) {
  Opts o;
  OptionSet set = make(o);
  ASSERT_TRUE(set.parse({"--layers", "7", "out", "--seed=42", "--lr", "1e-3", "--dtype", "f32", "--force"}));
  EXPECT_EQ(o.out, "out");
  EXPECT_EQ(o.layers, 7);
  EXPECT_EQ(o.seed, 42u);
  EXPECT_DOUBLE_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.dtype, "f32");
  EXPECT_TRUE(o.force);
  EXPECT_TRUE(set.given("layers"));
  EXPECT_FALSE(set.given("missing"));
  Json j = set.to_json();
  EXPECT_EQ(j["layers"], 7);
  EXPECT_EQ(j["force"], true);
}

TEST(Options, DefaultsStayAndShowInHelp) {
  Opts o;
  OptionSet set = make(o);
  ASSERT_TRUE(set.parse({"x"}));
  EXPECT_EQ(o.layers, 2);
  std::string help = set.help();
  EXPECT_NE(help.find("--layers L"), std::string::npos);
  EXPECT_NE(help.find("[default: 2]"), std::string::npos);
  EXPECT_NE(help.find("--dtype f32|bf16"), std::string::npos);
  EXPECT_NE(help.find("[default: bf16]"), std::string::npos);
}

void expect_error(const std::vector<std::string>& args, const std::string& fragment) {
  Opts o;
  OptionSet set = make(o);
  try {
    set.parse(args);
    FAIL() << "no error for " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Options, RejectsBadInput) {
  expect_error({"x", "--bogus"}, "unknown option '--bogus'");
  expect_error({"x", "-v"}, "unknown option '-v'");
  expect_error({"x", "--layers"}, "needs a value");
  expect_error({"x", "--layers", "two"}, "invalid value 'two' for --layers");
  expect_error({"x", "--layers", "3.5"}, "invalid value '3.5'");
  expect_error({"x", "--seed", "-1"}, "invalid value '-1' for --seed");
  expect_error({"x", "--dtype", "f64"}, "expected one of f32|bf16");
  expect_error({"x", "--force=yes"}, "takes no value");
  expect_error({"x", "--layers", "1", "--layers", "2"}, "given twice");
  expect_error({}, "missing OUT");
  expect_error({"x", "y"}, "unexpected argument 'y'");
}

TEST(Options, DoubleDashEndsOptions) {
  Opts o;
  OptionSet set = make(o);
  ASSERT_TRUE(set.parse({"--", "--weird-name"}));
  EXPECT_EQ(o.out, "--weird-name");
}

TEST(Options, ListsTakeValuesUpToTheNextOptionAndAppendWhenRepeated) {
  std::string out;
  std::vector<std::string> inputs;
  int64_t layers = 0;
  OptionSet set("demo", "upcycle demo OUT --input FILES…", "A test command.");
  set.add_positional("OUT", "output", &out, Required::kYes);
  set.add_list("input", "FILE", "inputs", &inputs);
  set.add("layers", "L", "layer count", &layers);
  ASSERT_TRUE(set.parse({"dir", "--input", "a", "b", "--layers", "3", "--input=c", "--input", "d"}));
  EXPECT_EQ(out, "dir");
  EXPECT_EQ(inputs, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(layers, 3);
  EXPECT_EQ(set.to_json()["input"].size(), 4u);
  EXPECT_NE(set.help().find("--input FILE…"), std::string::npos);

  std::vector<std::string> again;
  OptionSet bad("demo", "upcycle demo --input FILES…", "A test command.");
  bad.add_list("input", "FILE", "inputs", &again);
  EXPECT_THROW(bad.parse({"--input", "--other"}), Error);
  EXPECT_THROW(bad.parse({"--input"}), Error);
}

}  // namespace
}  // namespace upcycle::cli
