#include "grammar/grammar.h"
#include "core/error.h"
namespace muse::grammar {
std::string regex_to_gbnf(std::string_view pattern) { fail(MUSE_ERR_UNSUPPORTED, "regex: not yet"); }
}
