// Parsing and printing of sizes and counts as users type and read them: "5GB" (decimal, as HF's
// max_shard_size), "2GiB" (binary), "1.5MB", plain bytes; "6.74B" parameters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace upcycle {

// Throws Error("invalid size '<text>' for <what>: ...") on malformed input.
uint64_t parse_byte_size(std::string_view text, std::string_view what);
std::string format_bytes(uint64_t bytes);   // "4.98 GB", "512 B"
std::string format_count(uint64_t count);   // "6.74B", "124.4M", "4.1K", "12"

}  // namespace upcycle
