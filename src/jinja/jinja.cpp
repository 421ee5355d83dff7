#include "jinja/jinja.h"

#include "jinja/jinja-interpreter.h"
#include "jinja/jinja-lexer.h"
#include "jinja/jinja-parser.h"
#include "core/error.h"

#include <new>

namespace muse::jinja {

struct Template::Tree {
    Body body;
};

namespace {

// Only muse::Error leaves the engine: anything else is turned into one here.
template <class F>
auto guarded(F &&f) -> decltype(f()) {
    try {
        return f();
    } catch (const muse::Error &) {
        throw;
    } catch (const RuntimeError &e) {
        fail(MUSE_ERR_INVALID_ARGUMENT, e.message);
    } catch (const std::bad_alloc &) {
        fail(MUSE_ERR_OUT_OF_MEMORY, "out of memory while rendering the template");
    } catch (const std::exception &e) {
        fail(MUSE_ERR_INTERNAL, "template engine error: ", e.what());
    }
}

} // namespace

Template Template::parse(std::string_view source) {
    return guarded([&] {
        auto tree = std::make_shared<Tree>();
        tree->body = jinja::parse(tokenize(source));
        Template t;
        t.tree_ = std::move(tree);
        return t;
    });
}

std::string Template::render(const nlohmann::ordered_json &context) const {
    if (!tree_) fail(MUSE_ERR_INVALID_ARGUMENT, "render() on a Template that was not parsed");
    return guarded([&] {
        WorkBudget budget(max_work);
        Interpreter interp(now.value_or(std::chrono::system_clock::now()));
        return interp.render(tree_->body, context);
    });
}

} // namespace muse::jinja
