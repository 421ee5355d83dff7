"""The batched engine through the Python binding: muse.Batch / Session.decode, pulled
generations (Session.start / start_chat, Generation events, Session.step), cancellation
from another thread, Session.generate_many, and chat with thinking + stop + logprobs."""
import math
import threading

import pytest

import muse
import tiny_models as tm


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine")
    return muse.Model(tm.tiny_model(d, "qwen3", "F16"))


PROMPTS_TEXT = ["hello", "the quick brown fox", "one two three four five", "a"]


def _prompts(model):
    return [model.tokenize(t) or [1] for t in PROMPTS_TEXT]


def _alone(model, prompt, max_tokens, **sampling):
    return model.session(n_ctx=256, kv_type="f32").generate_tokens(prompt, max_tokens, **sampling)


def test_generate_many_greedy_equals_alone(model):
    prompts = _prompts(model)
    s = model.session(n_ctx=512, n_seq_max=4, kv_type="f32")
    many = s.generate_many(prompts, 12)
    assert len(many) == 4
    for p, got in zip(prompts, many):
        assert got == _alone(model, p, 12)
        assert 1 <= len(got) <= 12
    # texts work as prompts too
    assert s.generate_many(["hello"], 4) is not None


def test_generate_many_seeded_sampling_equals_alone(model):
    prompts = _prompts(model)
    s = model.session(n_ctx=512, n_seq_max=4, kv_type="f32")
    many = s.generate_many(prompts, 10, temperature=1.0, top_k=20, seed=11)
    for i, (p, got) in enumerate(zip(prompts, many)):
        assert got == _alone(model, p, 10, temperature=1.0, top_k=20, seed=11 + i)
    seeds = [5, 6, 7, 8]
    s2 = model.session(n_ctx=512, n_seq_max=4, kv_type="f32")
    many2 = s2.generate_many(prompts, 10, temperature=1.0, top_k=20, seed=seeds)
    for p, sd, got in zip(prompts, seeds, many2):
        assert got == _alone(model, p, 10, temperature=1.0, top_k=20, seed=sd)


def test_generate_many_needs_enough_sequences(model):
    s = model.session(n_ctx=256, n_seq_max=2)
    with pytest.raises(ValueError, match="n_seq_max"):
        s.generate_many(_prompts(model), 4)
    with pytest.raises(ValueError):
        s.generate_many(_prompts(model)[:2], 4, seed=[1])


def test_pull_api_events_and_result(model):
    prompt = model.tokenize("hello")
    s = model.session(n_ctx=256, kv_type="f32")
    with s.start(prompt, max_tokens=10, n_logprobs=3) as g:
        events = list(g)
        assert g.done
        assert events[-1].kind == "done"
        assert events[-1].finish_reason in ("stop", "length")
        assert all(e.kind != "done" for e in events[:-1])
        assert {e.kind for e in events[:-1]} <= {"token", "answer"}
        seen = [e.token for e in events if e.token >= 0 and e.kind in ("token", "answer")]
        r = g.result()
        assert r["tokens"] == seen
        assert r["answer"] == "".join(e.text for e in events if e.kind == "answer")
        assert len(r["logprobs"]) == len(seen)
        for e in events:
            if e.token >= 0:
                assert e.logprob <= 0 and len(e.top) == 3 and e.top[0][1] >= e.top[-1][1]
        # after DONE, next_event keeps returning DONE
        assert g.next_event().kind == "done"
        assert list(g) == []
    assert seen == _alone(model, prompt, 10)


def test_two_generations_stepped_together(model):
    p0, p1 = model.tokenize("hello"), model.tokenize("the quick brown fox")
    s = model.session(n_ctx=512, n_seq_max=2, kv_type="f32")
    g0 = s.start(p0, max_tokens=8, seq_id=0)
    g1 = s.start(p1, max_tokens=8, seq_id=1, temperature=0.8, seed=3)
    steps = 0
    while s.step() > 0:
        steps += 1
    assert steps <= 9 + 2
    assert g0.done and g1.done
    ev0, ev1 = list(g0), list(g1)
    assert ev0[-1].kind == "done" and ev1[-1].kind == "done"
    assert {e.seq_id for e in ev0} == {0} and {e.seq_id for e in ev1} == {1}
    assert g0.result()["tokens"] == _alone(model, p0, 8)
    assert g1.result()["tokens"] == _alone(model, p1, 8, temperature=0.8, seed=3)
    g0.close()
    g1.close()


def test_cancel_from_another_thread(model):
    s = model.session(n_ctx=1024)
    prompt = model.tokenize("hello")
    g = s.start(prompt, max_tokens=900)
    events = []
    canceller = None
    for ev in g:
        events.append(ev)
        if len(events) == 3:
            canceller = threading.Thread(target=g.cancel)
            canceller.start()
    canceller.join()
    assert events[-1].kind == "done"
    assert events[-1].finish_reason == "cancelled"
    assert len(g.result()["tokens"]) < 900
    g.close()
    # the session still works: a new generation on the same sequence runs to its end
    with s.start([], max_tokens=4) as g2:
        evs = list(g2)
        assert evs[-1].finish_reason in ("stop", "length")
        assert len(g2.result()["tokens"]) >= 1


def test_session_cancel_ends_pulled_generation(model):
    s = model.session(n_ctx=1024)
    with s.start(model.tokenize("hello"), max_tokens=900) as g:
        next(g)
        t = threading.Thread(target=s.cancel)
        t.start()
        t.join()
        evs = list(g)
        assert evs[-1].finish_reason == "cancelled"


def _rel_close(a, b, tol=1e-4):
    scale = max(1e-6, max(abs(x) for x in b))
    return max(abs(x - y) for x, y in zip(a, b)) <= tol * scale


def test_decode_batch_of_two_sequences_equals_alone(model):
    a = model.tokenize("hello world")
    b = model.tokenize("the quick brown fox jumps")
    s = model.session(n_ctx=256, n_seq_max=2, kv_type="f32")
    batch = muse.Batch(64)
    rows = {}
    for i, t in enumerate(a):
        r = batch.add(t, seq_id=0, logits=(i == len(a) - 1))
        rows["a"] = r
    for i, t in enumerate(b):
        r = batch.add(t, pos=i, seq_id=1, logits=(i == len(b) - 1))
        rows["b"] = r
    assert len(batch) == len(a) + len(b)
    s.decode(batch)
    la, lb = s.logits(rows["a"]), s.logits(rows["b"])
    ra = model.session(n_ctx=256, kv_type="f32").eval(a)
    rb = model.session(n_ctx=256, kv_type="f32").eval(b)
    assert len(la) == model.n_vocab
    assert _rel_close(la, ra) and _rel_close(lb, rb)
    # next tokens of both sequences in one more pass
    na, nb = max(range(len(la)), key=la.__getitem__), max(range(len(lb)), key=lb.__getitem__)
    batch.clear()
    assert len(batch) == 0
    batch.add(na, seq_id=0)
    batch.add(nb, seq_id=1)
    s.decode(batch)
    assert s.seq_length(0) == len(a) + 1 and s.seq_length(1) == len(b) + 1
    assert _rel_close(s.logits(0), model.session(n_ctx=256, kv_type="f32").eval(a + [na]))
    assert _rel_close(s.logits(1), model.session(n_ctx=256, kv_type="f32").eval(b + [nb]))
    with pytest.raises(muse.Error):
        s.logits(5)  # no such row
    batch.close()


def test_errors_keep_the_session_usable(model):
    s = model.session(n_ctx=256, n_seq_max=2)
    batch = muse.Batch(4)
    batch.add(1, seq_id=0)
    batch.add(model.n_vocab + 3, seq_id=0)
    with pytest.raises(muse.Error):
        s.decode(batch)
    assert s.seq_length(0) == 0
    with pytest.raises(muse.Error):
        muse.Batch(0)
    full = muse.Batch(1)
    full.add(1)
    with pytest.raises(muse.Error):
        full.add(2)
    with pytest.raises(TypeError):
        s.decode([1, 2])
    # a second generation on a busy sequence is refused
    g = s.start(model.tokenize("hello"), max_tokens=8, seq_id=0)
    with pytest.raises(muse.Error):
        s.start(model.tokenize("hello"), max_tokens=8, seq_id=0)
    g.close()
    # a bad token in a generation's prompt is an error, then the session still works
    with pytest.raises(muse.Error):
        list(s.generate([model.n_vocab], 4, seq_id=1))
    ok = muse.Batch(4)
    ok.add(1, seq_id=1)
    s.decode(ok)
    assert len(s.logits(0)) == model.n_vocab
    assert len(s.generate_tokens(model.tokenize("hello"), 4, seq_id=0)) >= 1


def test_generate_iterator_is_lazy_and_stops_early(model):
    s = model.session(n_ctx=512)
    it = s.generate(model.tokenize("hello"), 50)
    first = next(it)
    assert isinstance(first, str)
    it.close()  # frees the generation: the sequence is free again
    with s.start([], max_tokens=2) as g:
        assert list(g)[-1].kind == "done"
    assert threading.active_count() >= 1




QUESTION = [{"role": "user", "content": "How many shapes?"}]


def _ban(model, texts):
    return {model.tokenize(t, parse_special=True)[0]: -1e9 for t in texts}


def test_chat_thinking_stop_logprobs_budget_together(chat_model):
    kind, m = chat_model
    never_end = ["<|eom|>", "<|eot|>", "<|start|>", "<|message|>"] if kind == "atem" else \
        ["</think>", "<|im_end|>", "<|im_start|>", "<think>"]
    opts = dict(thinking="on", thinking_budget=6, wrap_up=" Done.", max_tokens=60, logit_bias=_ban(m, never_end))
    # the budget, then at most 3 tokens finishing a partial UTF-8 character, then the wrap-up
    wrap = len(m.tokenize(" Done.")) + 3
    # Without a stop string: the budget is honoured and every token has its logprobs.
    full = m.session(n_ctx=512).chat(QUESTION, n_logprobs=2, **opts)
    assert full.usage["reasoning_end"] == "budget"
    assert full.usage["reasoning_tokens"] <= 6 + wrap
    assert full.answer
    assert full.logprobs and len(full.logprobs) == len(full.tokens)
    assert all(len(lp["top"]) == 2 and lp["logprob"] <= 0 for lp in full.logprobs)
    # The pull API gives the same turn, with logprobs in its result.
    s = m.session(n_ctx=512)
    with s.start_chat(QUESTION, n_logprobs=2, **opts) as g:
        events = list(g)
        r = g.result()
    assert r["answer"] == full.answer and r["reasoning"] == full.reasoning
    assert r["tokens"] == full.tokens
    assert len(r["logprobs"]) == len(r["tokens"])
    assert "".join(e.text for e in events if e.kind == "reasoning") == r["reasoning"]
    assert "".join(e.text for e in events if e.kind == "answer") == r["answer"]
    assert any(e.forced for e in events)
    # A stop string that appears in the answer ends the turn before it.
    visible = [c for c in full.answer if c.strip() and c != "\ufffd"]
    if len(visible) < 3:
        pytest.skip("the random answer is too short to pick a stop string")
    stop = visible[len(visible) // 2]
    cut = m.session(n_ctx=512).chat(QUESTION, n_logprobs=2, stop=[stop], **opts)
    assert stop not in cut.answer
    assert full.answer.startswith(cut.answer)
    assert cut.finish_reason == "stop"
    assert cut.usage["reasoning_tokens"] <= 6 + wrap
    assert len(cut.logprobs) == len(cut.tokens) > 0
    # ... the same through the stream and the pull API
    streamed = list(m.session(n_ctx=512).chat_stream(QUESTION, logprobs=2, stop=[stop], **opts))
    assert "".join(t for c, t in streamed if c == "answer") == cut.answer
    with m.session(n_ctx=512).start_chat(QUESTION, n_logprobs=2, stop=[stop], **opts) as g:
        evs = list(g)
        assert evs[-1].finish_reason == "stop"
        assert g.result()["answer"] == cut.answer
