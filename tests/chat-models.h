// Tiny random chat models for the reasoning tests: a muse-glimmer decoder with
// the ATEM framing tokens, and a qwen3 decoder with <think> tags, each with a
// small chat template of its family's shape (self-contained: the real templates
// in ../shared/templates are exercised separately when present).
#pragma once

#include "decoder-models.h"

namespace muse::test {

// The ATEM framing of muse-glimmer.jinja reduced to what the tests need. The comment
// names `<atem:function_calls>` and `<|eom|>`, which is how the format is detected.
inline const char *kAtemTemplate =
    "{#- ATEM framing: <|start|>header<|message|>body<|eom|> / <|eot|>; tool calls use <atem:function_calls> -#}\n"
    "{{- bos_token -}}\n"
    "{%- if reasoning_effort is defined -%}<|start|>system<|message|>Reasoning strength: {{ reasoning_effort }}."
    "<|eot|>{%- endif -%}\n"
    "{%- for m in messages -%}\n"
    "{%- if m.role == 'assistant' -%}<|start|>assistant to=user<|message|>{{ m.content }}<|eot|>\n"
    "{%- else -%}<|start|>{{ m.role }}<|message|>{{ m.content }}<|eot|>{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}";

inline const char *kThinkTemplate =
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}";

inline TinyDecoderSpec atem_chat_spec() {
    TinyDecoderSpec s;
    s.arch = "muse-glimmer";
    s.n_vocab = 300;
    s.n_swa = 8;
    s.control_tokens = {"<|start|>", "<|message|>", "<|eom|>", "<|eot|>", "<|image_start|>", "<|image_end|>"};
    s.eot_token = "<|eot|>";
    s.chat_template = kAtemTemplate;
    return s;
}

inline TinyDecoderSpec think_chat_spec() {
    TinyDecoderSpec s;
    s.arch = "qwen3";
    s.n_vocab = 300;
    s.control_tokens = {"<|im_start|>", "<|im_end|>", "<think>", "</think>"};
    s.eot_token = "<|im_end|>";
    s.chat_template = kThinkTemplate;
    return s;
}

} // namespace muse::test
