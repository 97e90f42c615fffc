// EXPECT_UPCYCLE_ERROR(statement, needle, file): the statement throws upcycle::Error whose message
// contains `needle` and whose file() equals `file`. A macro so failures point at the calling line.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

#define EXPECT_UPCYCLE_ERROR(statement_, needle_, file_)                                            \
  do {                                                                                              \
    try {                                                                                           \
      statement_;                                                                                   \
      ADD_FAILURE() << "expected upcycle::Error containing: " << (needle_);                         \
    } catch (const ::upcycle::Error& upcycle_error_) {                                              \
      EXPECT_NE(std::string(upcycle_error_.what()).find(needle_), std::string::npos)                \
          << "message: " << upcycle_error_.what();                                                  \
      EXPECT_EQ(upcycle_error_.file(), std::string(file_)) << "message: " << upcycle_error_.what(); \
    }                                                                                               \
  } while (0)
