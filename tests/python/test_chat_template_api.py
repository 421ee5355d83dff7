"""The public chat-template API (C via Python): same output as transformers-configured
jinja2 (the full template x conversation conformance suite is test_jinja_templates.py)."""
import pytest

import muse
from test_jinja_templates import SHARED, TOOLS, make_env, render_python

PICK = ["muse-glimmer.jinja", "Qwen-Qwen3-0.6B.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja"]


@pytest.mark.parametrize("name", PICK)
def test_render_matches_jinja2(name):
    if SHARED is None:
        pytest.skip("needs ../shared/templates")
    source = (SHARED / "templates" / name).read_text()
    tmpl = muse.ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    env = make_env()
    compiled = env.from_string(source)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ✓"}]
    for gen in (True, False):
        ctx = {"messages": messages, "add_generation_prompt": gen, "bos_token": "<s>", "eos_token": "</s>",
               "tools": TOOLS}
        want, error = render_python(compiled, ctx)
        if error:
            with pytest.raises(muse.Error):
                tmpl.render(messages, add_generation_prompt=gen, tools=TOOLS)
        else:
            assert tmpl.render(messages, add_generation_prompt=gen, tools=TOOLS) == want


def test_errors():
    with pytest.raises(muse.Error) as e:
        muse.ChatTemplate("{% if %}")
    assert e.value.status_name == "MUSE_ERR_FORMAT"
    t = muse.ChatTemplate("{{ raise_exception('nope') }}")
    with pytest.raises(muse.Error) as e:
        t.render([])
    assert "nope" in str(e.value)
    assert muse.ChatTemplate("{% for m in messages %}[{{ m.content }}]{% endfor %}").render(
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "[a][b]"


def test_model_without_template_has_none(tmp_path):
    import tiny_models as tm
    assert muse.Model(tm.tiny_model(tmp_path, "llama", "F32"), vocab_only=True).chat_template is None
