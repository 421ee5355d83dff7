#include "grammar/grammar.h"
#include "core/error.h"
namespace muse::grammar {
std::string json_schema_to_gbnf(const nlohmann::json &, const JsonSchemaOptions &) { fail(MUSE_ERR_UNSUPPORTED, "json schema: not yet"); }
}
