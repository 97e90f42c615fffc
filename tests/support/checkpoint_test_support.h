// Reading what a command wrote: one tensor's stored bytes, for tests that compare outputs byte for
// byte (convert recipes, carving) without decoding dtypes.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/checkpoint.h"

namespace upcycle::test {

// The raw bytes of tensor `name` in the checkpoint at `dir` ("" and a test failure when absent).
inline std::string tensor_bytes(const std::filesystem::path& dir, const std::string& name) {
  Checkpoint ckpt = Checkpoint::open(dir);
  const TensorRef* t = ckpt.find(name);
  EXPECT_NE(t, nullptr) << name << " in " << dir;
  if (!t) return {};
  auto bytes = t->file->data(*t->info);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace upcycle::test
