"""Session.chat / chat_stream and the C chat entry points through the Python binding, on
the tiny random chat models of tests/chat-models.h (written by the make-chat-model tool).
The numerical side of the controller is tested in test-thinking.cpp; here: the binding
passes every option through, streaming equals the final response, and errors are clear."""

import pytest

import muse


def _ban(model, texts):
    return {model.tokenize(t, parse_special=True)[0]: -1e9 for t in texts}


QUESTION = [{"role": "user", "content": "How many shapes?"}]


def test_budget_and_streaming_agree(chat_model):
    kind, m = chat_model
    never_end = ["<|eom|>", "<|eot|>", "<|start|>", "<|message|>"] if kind == "atem" else \
        ["</think>", "<|im_end|>", "<|im_start|>", "<think>"]
    s = m.session(n_ctx=512)
    events = list(s.chat_stream(QUESTION, thinking="on", thinking_budget=7, max_tokens=220,
                                logit_bias=_ban(m, never_end), wrap_up=" Done."))
    r = s.last_response
    assert r.usage["reasoning_end"] == "budget"
    assert r.usage["reasoning_tokens"] <= 7 + len(m.tokenize(" Done."))
    assert r.answer, "an answer must follow the budget cut"
    assert r.reasoning.endswith("Done.")
    assert "".join(t for c, t in events if c == "reasoning") == r.reasoning
    assert "".join(t for c, t in events if c == "answer") == r.answer
    # The same turn without streaming gives the same response.
    r2 = m.session(n_ctx=512).chat(QUESTION, thinking="on", thinking_budget=7, max_tokens=220,
                                   logit_bias=_ban(m, never_end), wrap_up=" Done.")
    assert (r2.reasoning, r2.answer, r2.usage) == (r.reasoning, r.answer, r.usage)


def test_thinking_off_has_no_reasoning(chat_model):
    kind, m = chat_model
    r = m.session(n_ctx=512).chat(QUESTION, thinking="off", max_tokens=24, temperature=1.0, seed=3)
    assert r.reasoning == ""
    assert r.usage["reasoning_tokens"] == 0
    assert r.usage["reasoning_end"] == "off"


def test_min_tokens_and_cue(chat_model):
    kind, m = chat_model
    end = "<|eom|>" if kind == "atem" else "</think>"
    r = m.session(n_ctx=512).chat(QUESTION, thinking="on", min_thinking_tokens=6, continue_cue="Hmm",
                                  max_tokens=120, logit_bias={m.tokenize(end, parse_special=True)[0]: 1e9})
    assert r.usage["reasoning_tokens"] >= 6
    assert "Hmm" in r.reasoning
    assert r.usage["cues"] > 0


def test_prompt_rendering_and_prefix_reuse(chat_model):
    kind, m = chat_model
    prompt = m.chat_prompt(QUESTION, thinking="off")
    if kind == "atem":
        assert prompt.endswith("<|start|>assistant")
        assert "Reasoning strength: none." in prompt
    else:
        assert prompt.endswith("<think>\n\n</think>\n\n")
    s = m.session(n_ctx=512)
    first = s.chat(QUESTION, thinking="off", max_tokens=8)
    assert first.usage["cached_tokens"] == 0
    follow = QUESTION + [{"role": "assistant", "content": first.answer}, {"role": "user", "content": "Sure?"}]
    second = s.chat(follow, thinking="off", max_tokens=8)
    assert second.usage["cached_tokens"] > 0
    fresh = m.session(n_ctx=512).chat(follow, thinking="off", max_tokens=8)
    assert fresh.answer == second.answer


def test_bad_arguments(chat_model):
    kind, m = chat_model
    s = m.session(n_ctx=512)
    with pytest.raises(ValueError):
        s.chat(QUESTION, thinking="maybe")
    with pytest.raises(ValueError):
        s.chat(QUESTION, effort="extreme")
    with pytest.raises(muse.Error, match="min_tokens"):
        s.chat(QUESTION, thinking="on", thinking_budget=2, min_thinking_tokens=5)
    with pytest.raises(muse.Error, match="template"):
        s.chat(QUESTION, template="{% if %}")
    # Still usable afterwards.
    assert s.chat(QUESTION, thinking="off", max_tokens=2).usage["reasoning_tokens"] == 0
