// C entry points for chat templates (src/jinja/jinja.h).
#include "api/api-guard.h"
#include "api/handles.h"
#include "jinja/jinja.h"

#include <cstdlib>

struct muse_chat_template {
    muse::jinja::Template impl;
};

using namespace muse;
using namespace muse::api;

namespace {

nlohmann::ordered_json parse_json(const char *text, const char *what) {
    try {
        return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        fail(MUSE_ERR_INVALID_ARGUMENT, what, " is not valid JSON: ", e.what());
    }
}

} // namespace

extern "C" {

MUSE_API muse_status muse_chat_template_create(const char *source, muse_chat_template **out) {
    if (out) *out = nullptr;
    return guard([&] {
        require(source, "source");
        require(out, "out_template");
        *out = new muse_chat_template{jinja::Template::parse(source)};
    });
}

MUSE_API muse_status muse_model_chat_template(const muse_model *m, muse_chat_template **out) {
    if (out) *out = nullptr;
    return guard([&] {
        if (!m || !m->impl) fail(MUSE_ERR_INVALID_ARGUMENT, "model handle is NULL");
        require(out, "out_template");
        const auto source = m->impl->file().get_string("tokenizer.chat_template");
        if (!source) fail(MUSE_ERR_NOT_FOUND, "the model has no tokenizer.chat_template");
        *out = new muse_chat_template{jinja::Template::parse(*source)};
    });
}

MUSE_API void muse_chat_template_free(muse_chat_template *t) { delete t; }

MUSE_API muse_status muse_chat_template_render(const muse_chat_template *t, const char *messages_json,
                                               const char *options_json, char **out_text) {
    if (out_text) *out_text = nullptr;
    return guard([&] {
        require(t, "template");
        require(messages_json, "messages_json");
        require(out_text, "out_text");
        nlohmann::ordered_json context = nlohmann::ordered_json::object();
        if (options_json) {
            context = parse_json(options_json, "options_json");
            if (!context.is_object()) fail(MUSE_ERR_INVALID_ARGUMENT, "options_json must be a JSON object");
        }
        nlohmann::ordered_json messages = parse_json(messages_json, "messages_json");
        if (!messages.is_array()) fail(MUSE_ERR_INVALID_ARGUMENT, "messages_json must be a JSON array");
        context["messages"] = std::move(messages);
        const std::string text = t->impl.render(context);
        *out_text = dup_string(text);
    });
}

} // extern "C"
