// Fuzz target (fuzz_targets.h): the bytes are a tokenizer.json. Tokenizer::load must reject what it
// cannot honour with an Error; an accepted tokenizer must encode text to ids inside its vocabulary
// (encoding may still refuse with an Error, e.g. text no merge or byte covers).
#include <string>

#include "core/error.h"
#include "data/tokenizer.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_tokenizer_json(const uint8_t* data, size_t size) {
  const auto path = write_scratch("tokenizer/tokenizer.json", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const data::Tokenizer tok = data::Tokenizer::load(path);
    const int64_t vocab = tok.vocab_size();
    for (const char* text : {"Hello, world! 123", " \xc3\xa9t\xc3\xa9  \n\t<|endoftext|>", ""}) {
      const auto ids = tok.encode(text, data::AddSpecial::kYes);
      for (const int32_t id : ids)
        if (id < 0 || id >= vocab) fuzz_finding("encode produced an id outside the vocabulary");
      (void)tok.decode(ids);
    }
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
