// The tool phase of a generation (tools/tool-loop.h) at the engine level: after a call
// closes, the tool runs, and the conversation the sequence holds afterwards is the
// family's rendering of the call and its result (the template's format), evaluated
// from the prefix the sequence already held; failures and images without a vision
// encoder reach the model as text.
#include "tool-models.h"
#include "engine/chat-turn.h"
#include "engine/session.h"
#include "model/model.h"
#include "tools/tool-loop.h"

#include <catch2/catch.hpp>

using namespace muse;
using namespace muse::tools;
using json = nlohmann::ordered_json;

namespace {

json weather_decl() {
    return {{"type", "function"},
            {"function",
             {{"name", "get_weather"},
              {"description", "Weather of a city"},
              {"parameters",
               {{"type", "object"},
                {"properties", {{"city", {{"type", "string"}, {"maxLength", 8}}}}},
                {"required", json::array({"city"})}}}}}};
}

struct Run {
    GenerationResult result;
    std::string held;  // what the sequence holds afterwards, special tokens rendered
    std::vector<GenerationEvent> results;
};

Run run_loop(bool atem, std::function<ToolOutcome(const json &)> fn, int max_rounds = 1) {
    auto l = test::load(atem ? test::atem_tool_spec() : test::hermes_tool_spec());
    SessionOptions so;
    so.n_ctx = 2048;
    Session session(l.model->require_decoder(), so);
    session.set_end_of_generation(l.model->end_of_generation());
    ChatRequest req;
    req.messages = json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}});
    req.tool_choice = ToolChoice::parse(std::string("get_weather"));
    req.thinking.mode = reasoning::ThinkingMode::off;
    req.max_tokens = 1000;
    req.parallel_tool_calls = false;
    ToolLoopOptions o;
    o.max_rounds = max_rounds;
    Tool weather;
    weather.declaration = weather_decl();
    weather.run = [fn](const json &args, const ToolContext &) { return fn(args); };
    o.tools.push_back(weather);
    auto loop = std::make_shared<ToolLoop>(*l.model, req, o);
    std::string prompt;
    auto gen = session.start(0, ToolLoop::prepare(loop, session, &prompt));
    Run r;
    session.run(*gen, [&](const GenerationEvent &ev) {
        if (ev.kind == GenerationEvent::Kind::tool_result) r.results.push_back(ev);
        return true;
    });
    r.result = gen->result();
    const std::vector<int32_t> *held = session.seq_tokens(0);
    REQUIRE(held != nullptr);
    r.held = l.model->require_tokenizer().detokenize(*held, true);
    return r;
}

} // namespace

TEST_CASE("tool phase: results enter the conversation in the family's format, prefix reused", "[tools][engine]") {
    for (const bool atem : {true, false}) {
        INFO((atem ? "atem" : "hermes"));
        const Run r = run_loop(atem, [](const json &args) {
            return ToolOutcome{"TOOL-OUTPUT city=" + args["city"].get<std::string>()};
        });
        REQUIRE(r.results.size() == 1);
        CHECK(r.result.tool_rounds == 1);
        REQUIRE(r.result.tool_results.size() == 1);
        CHECK_FALSE(r.result.tool_results[0].failed);
        const std::string city = json::parse(r.result.tool_results[0].call.arguments)["city"].get<std::string>();
        INFO(r.held);
        if (atem) {
            CHECK(r.held.find("<|start|>assistant to=get_weather<|message|><atem:function_calls>\n"
                              "<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">" + city) !=
                  std::string::npos);
            CHECK(r.held.find("<|start|>tool get_weather<|message|><tool_output name=\"get_weather\">\n"
                              "TOOL-OUTPUT city=" + city + "\n</tool_output><|eot|><|start|>assistant") !=
                  std::string::npos);
        } else {
            CHECK(r.held.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ") != std::string::npos);
            CHECK(r.held.find("<|im_start|>user\n<tool_response>\nTOOL-OUTPUT city=" + city +
                              "\n</tool_response><|im_end|><|im_start|>assistant\n") != std::string::npos);
        }
        // The second round evaluated only what the first did not leave in the cache.
        CHECK(r.result.prompt_tokens - r.result.prompt_evaluated > 0);
    }
}

TEST_CASE("tool phase: a throwing tool and an image the model cannot see become text", "[tools][engine]") {
    const Run thrown = run_loop(false, [](const json &) -> ToolOutcome { throw std::runtime_error("disk on fire"); });
    REQUIRE(thrown.result.tool_results.size() == 1);
    CHECK(thrown.result.tool_results[0].failed);
    CHECK(thrown.result.tool_results[0].content == "error: disk on fire");
    CHECK(thrown.held.find("<tool_response>\nerror: disk on fire\n</tool_response>") != std::string::npos);

    const Run image = run_loop(true, [](const json &) {
        ToolOutcome o{"a zoomed view"};
        const std::vector<uint8_t> px(4 * 4 * 3, 128);
        o.image = image_from_pixels(px.data(), 4, 4, 3, 4 * 3);
        o.artefacts.push_back({"annotation", "image/png", {1, 2, 3}});
        return o;
    });
    REQUIRE(image.result.tool_results.size() == 1);
    CHECK_FALSE(image.result.tool_results[0].image);  // no mmproj: not attached
    CHECK(image.held.find("a zoomed view\n(The tool returned an image, which this model cannot see.)") !=
          std::string::npos);
}
