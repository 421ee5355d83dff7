"""Contemplating mode through the Python binding (Session.chat / chat_stream / start_chat /
generate with agents > 1) on the tiny random "think" chat model of tests/chat-models.h. The
engine's side (forking, confidence, early stop) is tested in test-contemplate.cpp; here: every
keyword reaches the C block, the result is surfaced as documented, and errors are clear."""
import collections

import pytest

import muse
from conftest import make_chat_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_chat_model(tmp_path_factory, "think")


QUESTION = [{"role": "user", "content": "Which option?"}]
LETTERS = ("A", "a", "B", "b")


def _session(m, n_seq_max):
    return m.session(n_ctx=1024, n_seq_max=n_seq_max, kv_type="f32")


def _letters_only(m):
    """A logit bias that leaves only the tokens A, a, B, b: one-token answers that differ in case."""
    allowed = {m.tokenize(t, parse_special=True)[0] for t in LETTERS}
    assert len(allowed) == 4
    return {t: -1e9 for t in range(m.n_vocab) if t not in allowed}


def _norm(answer):
    return answer.strip().lower()


def _majority(answers):
    """Normalized majority, ties to the answer seen first; (key, votes)."""
    counts = collections.Counter(_norm(a) for a in answers if _norm(a))
    order = []
    for a in answers:
        if _norm(a) and _norm(a) not in order:
            order.append(_norm(a))
    best = max(order, key=lambda k: (counts[k], -order.index(k)))
    return best, counts[best]


def test_vote_is_the_normalized_majority(model):
    m = model
    # A seed whose four one-letter answers differ in case somewhere (so that the case only
    # matters to the normalizer: more raw answers than normalized ones).
    for seed in range(64):
        r = _session(m, 4).chat(QUESTION, agents=4, aggregate="vote", thinking="off", max_tokens=1,
                                temperature=3.0, seed=seed, logit_bias=_letters_only(m))
        answers = [a.answer for a in r.agents]
        if len(set(answers)) > len({_norm(a) for a in answers}):
            break
    else:
        pytest.fail("no seed in 0..63 gave answers that differ only in case")
    assert [a.agent for a in r.agents] == [0, 1, 2, 3]
    assert all(a in LETTERS for a in answers)
    key, votes = _majority(answers)
    assert _norm(r.answer) == key
    assert r.answer == next(a for a in answers if _norm(a) == key)  # the first agent of the majority
    assert r.aggregate["method"] == "vote"
    assert r.aggregate["agreement"] == pytest.approx(votes / 4)
    assert dict((k, w) for k, w in r.aggregate["tally"]) == collections.Counter(_norm(a) for a in answers)
    for i, a in enumerate(r.agents):
        assert a.voted
        assert a.finish_reason == "length"
        assert a.seed == seed + i
        assert a.temperature == pytest.approx(3.0)
        assert a.confidence > 0
        assert a.usage["completion_tokens"] == 1
        assert a.reasoning == ""
    assert r.usage["completion_tokens"] == 4
    assert isinstance(r.agents[0], muse.Agent)


def test_prompt_is_evaluated_once(model):
    m = model
    r4 = _session(m, 4).chat(QUESTION, agents=4, thinking="off", max_tokens=4, temperature=1.0, seed=1)
    r1 = _session(m, 1).chat(QUESTION, thinking="off", max_tokens=4, temperature=1.0, seed=1)
    assert r4.usage["prompt_tokens"] == r1.usage["prompt_tokens"]
    # One agent reports no prompt_tokens_evaluated: on a fresh session it ran every prompt row.
    assert r1.usage["cached_tokens"] == 0
    assert r4.usage["prompt_tokens_evaluated"] == r1.usage["prompt_tokens"] - r1.usage["cached_tokens"]
    assert r4.usage["cached_tokens"] == 0
    assert r1.agents == [] and r1.aggregate == {}


def test_each_agent_is_a_one_agent_chat(model):
    m = model
    opts = dict(thinking="on", thinking_budget=3, max_tokens=10, temperature=0.9)
    r = _session(m, 4).chat(QUESTION, agents=4, temperature_spread=0.4, seed=11, **opts)
    temps = [a.temperature for a in r.agents]
    assert temps == pytest.approx([0.9 + 0.4 * (i / 3 - 0.5) for i in range(4)])
    for a in r.agents:
        alone = _session(m, 1).chat(QUESTION, seed=a.seed, **dict(opts, temperature=a.temperature))
        assert (a.reasoning, a.answer) == (alone.reasoning, alone.answer), f"agent {a.agent}"
        assert a.usage["reasoning_tokens"] == alone.usage["reasoning_tokens"]
    # Per-agent settings override the spread and the seeds.
    r = _session(m, 3).chat(QUESTION, agents=3, seed=0, agent_seeds=[40, 41, 42], agent_temperatures=[0.0, 0.5, 1.5],
                            **opts)
    assert [a.seed for a in r.agents] == [40, 41, 42]
    assert [a.temperature for a in r.agents] == pytest.approx([0.0, 0.5, 1.5])
    alone = _session(m, 1).chat(QUESTION, seed=41, **dict(opts, temperature=0.5))
    assert r.agents[1].answer == alone.answer


def test_custom_normalizer(model):
    m = model
    seen = []

    def everything_is_x(answer):
        seen.append(answer)
        return "x"

    r = _session(m, 4).chat(QUESTION, agents=4, thinking="off", max_tokens=5, temperature=1.5, seed=3,
                            normalize=everything_is_x)
    assert r.aggregate["agreement"] == pytest.approx(1.0)
    assert r.aggregate["tally"] == [["x", 4.0]]
    assert sorted(seen) == sorted(a.answer for a in r.agents)
    assert r.answer == r.agents[0].answer  # every answer ties into one group: the first agent's
    # A normalizer that raises: the error reaches the caller.
    with pytest.raises(ZeroDivisionError):
        _session(m, 2).chat(QUESTION, agents=2, thinking="off", max_tokens=2, normalize=lambda a: 1 / 0)
    with pytest.raises(TypeError):
        _session(m, 2).chat(QUESTION, agents=2, thinking="off", max_tokens=2, normalize="lower")


def test_stream_yields_agent_triples(model):
    m = model
    s = _session(m, 3)
    events = list(s.chat_stream(QUESTION, agents=3, thinking="on", thinking_budget=2, max_tokens=12,
                                temperature=1.0, seed=5))
    r = s.last_response
    assert all(len(e) == 3 for e in events)
    # Agent -1 streams the aggregate answer (when there is one to stream).
    assert {a for a, _, _ in events} == {0, 1, 2} | ({-1} if r.answer else set())
    for a in r.agents:
        i = a.agent
        assert "".join(t for ag, c, t in events if ag == i and c == "reasoning") == a.reasoning
        assert "".join(t for ag, c, t in events if ag == i and c == "answer") == a.answer
    assert "".join(t for ag, c, t in events if ag == -1 and c == "answer") == r.answer
    assert len(r.agents) == 3 and r.aggregate["method"] == "vote"
    # One agent: the (channel, text) pairs as before.
    pairs = list(_session(m, 1).chat_stream(QUESTION, thinking="off", max_tokens=4))
    assert pairs and all(len(p) == 2 and p[0] == "answer" for p in pairs)


def test_start_chat_events_carry_agents(model):
    m = model
    with _session(m, 3).start_chat(QUESTION, agents=3, thinking="off", max_tokens=4, temperature=1.0,
                                   seed=2) as g:
        events = list(g)
        d = g.result()
    done = [e for e in events if e.kind == "agent_done"]
    assert sorted(e.agent for e in done) == [0, 1, 2]
    assert all(e.finish_reason in ("stop", "length") for e in done)
    assert events[-1].kind == "done" and events[-1].agent == -1
    assert {e.agent for e in events if e.kind == "answer"} >= {0, 1, 2}
    assert len(d["agents"]) == 3 and d["aggregate"]["method"] == "vote"


def test_generate_raw_prompt(model):
    m = model
    s = _session(m, 3)
    prompt = m.tokenize("How many shapes are there", add_special=False)
    pieces = list(s.generate(prompt, 6, agents=3, temperature=1.0, seed=9))
    d = s.last_result
    assert {a for a, _ in pieces} <= {0, 1, 2, -1}
    assert len(d["agents"]) == 3
    for a in d["agents"]:
        assert "".join(t for ag, t in pieces if ag == a["agent"]) == a["answer"]
    # Agent 1 alone: the same text.
    alone = "".join(_session(m, 1).generate(prompt, 6, temperature=1.0, seed=d["agents"][1]["seed"]))
    assert alone == d["agents"][1]["answer"]


def test_synthesize_end_to_end(model):
    m = model
    s = _session(m, 4)
    r = s.chat(QUESTION, agents=3, aggregate="synthesize", thinking="off", max_tokens=8, temperature=1.0, seed=7)
    assert r.aggregate["method"] == "synthesize"
    assert len(r.agents) == 3
    assert r.aggregate["synthesis_prompt_tokens"] > r.usage["prompt_tokens"]
    assert r.usage["prompt_tokens_evaluated"] == (r.usage["prompt_tokens"] + r.aggregate["synthesis_prompt_tokens"]
                                                 - r.aggregate["synthesis_cached_tokens"])
    assert r.finish_reason in ("stop", "length")
    # Streamed: the synthesis pass is agent 3, then the aggregate answer (-1).
    events = list(_session(m, 4).chat_stream(QUESTION, agents=3, aggregate="synthesize", thinking="off",
                                             max_tokens=8, temperature=1.0, seed=7))
    agents = {a for a, _, _ in events}
    assert {0, 1, 2, 3} <= agents
    assert "".join(t for a, c, t in events if a == -1 and c == "answer") == r.answer


def test_errors_are_clear(model):
    m = model
    s = _session(m, 2)
    with pytest.raises(muse.Error, match="n_seq_max >= 3") as e:
        s.chat(QUESTION, agents=3, thinking="off", max_tokens=2)
    assert e.value.status_name == "MUSE_ERR_INVALID_ARGUMENT"
    with pytest.raises(muse.Error, match="n_seq_max >= 3"):  # synthesize needs one more
        s.chat(QUESTION, agents=2, aggregate="synthesize", thinking="off", max_tokens=2)
    with pytest.raises(muse.Error, match="n_seq_max"):
        s.start_chat(QUESTION, agents=4)
    with pytest.raises(ValueError, match="aggregate"):
        s.chat(QUESTION, agents=2, aggregate="majority")
    with pytest.raises(ValueError, match="trace_score"):
        s.chat(QUESTION, agents=2, trace_score="median")
    with pytest.raises(ValueError, match="1 entries for 2 agents"):
        s.chat(QUESTION, agents=2, agent_seeds=[1])
    with pytest.raises(ValueError, match="agents > 1"):
        s.chat(QUESTION, aggregate="synthesize")
    with pytest.raises(ValueError, match="agents > 1"):
        s.start([1, 2, 3], 4, keep_top=0.5)
    with pytest.raises(muse.Error, match="temperature_spread"):
        s.chat(QUESTION, agents=2, temperature_spread=-1.0)
    # The session still works, with and without agents.
    assert len(s.chat(QUESTION, agents=2, thinking="off", max_tokens=2).agents) == 2
    assert s.chat(QUESTION, thinking="off", max_tokens=2).agents == []
