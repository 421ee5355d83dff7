
// ------------------------------------------------------------ the tool loop's prompts

#include "tools/tool-loop.h"

TEST_CASE("tool loop: results enter the conversation in the family's format, prefix reused", "[tools][engine]") {
    for (const bool atem : {true, false}) {
        INFO((atem ? "atem" : "hermes"));
        auto l = test::load(atem ? test::atem_tool_spec() : test::hermes_tool_spec());
        SessionOptions so;
        so.n_ctx = 2048;
        Session session(l.model->require_decoder(), so);
        session.set_end_of_generation(l.model->end_of_generation());
        ChatRequest req = weather_request("get_weather");
        req.thinking.mode = reasoning::ThinkingMode::off;
        req.max_tokens = 1000;
        req.parallel_tool_calls = false;
        req.tools = json::array();
        ToolLoopOptions o;
        o.max_rounds = 1;
        Tool weather;
        weather.declaration = test_tools()[0];
        weather.run = [](const json &args, const ToolContext &) {
            return ToolOutcome{"TOOL-OUTPUT city=" + args["city"].get<std::string>()};
        };
        o.tools.push_back(weather);
        auto loop = std::make_shared<ToolLoop>(*l.model, req, o);
        std::string prompt;
        auto gen = session.start(0, ToolLoop::prepare(loop, session, &prompt));
        std::vector<GenerationEvent> results;
        session.run(*gen, [&](const GenerationEvent &ev) {
            if (ev.kind == GenerationEvent::Kind::tool_result) results.push_back(ev);
            return true;
        });
        const GenerationResult &r = gen->result();
        REQUIRE(results.size() == 1);
        CHECK(r.tool_rounds == 1);
        REQUIRE(r.tool_results.size() == 1);
        const std::string city = json::parse(r.tool_results[0].call.arguments)["city"].get<std::string>();
        // What the sequence holds now: the rendered conversation with the call and its result.
        const std::vector<int32_t> *held = session.seq_tokens(0);
        REQUIRE(held != nullptr);
        const std::string text = l.model->require_tokenizer().detokenize(*held, true);
        INFO(text);
        if (atem) {
            CHECK(text.find("<|start|>assistant to=get_weather<|message|><atem:function_calls>\n"
                            "<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">" + city) !=
                  std::string::npos);
            CHECK(text.find("<|start|>tool get_weather<|message|><tool_output name=\"get_weather\">\nTOOL-OUTPUT city=" +
                            city + "\n</tool_output><|eot|><|start|>assistant") != std::string::npos);
        } else {
            CHECK(text.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ") != std::string::npos);
            CHECK(text.find("<|im_start|>user\n<tool_response>\nTOOL-OUTPUT city=" + city +
                            "\n</tool_response><|im_end|>\n<|im_start|>assistant\n") != std::string::npos);
        }
        // The second round evaluated only what the first did not leave in the cache.
        CHECK(r.prompt_tokens - r.prompt_evaluated > 0);
    }
}
