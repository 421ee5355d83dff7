// Tiny random chat models whose templates render tools, tool calls and tool results in
// the shape of their family (ATEM as muse-glimmer.jinja, Hermes as Qwen2.5), for the
// tool-loop tests. Byte-level vocabularies: any call text can be spelled.
#pragma once

#include "chat-models.h"

namespace muse::test {

inline const char *kAtemToolTemplate =
    "{#- ATEM framing: <|start|>header<|message|>body<|eom|> / <|eot|>; tool calls use <atem:function_calls> -#}\n"
    "{{- bos_token -}}\n"
    "{%- if tools -%}<|start|>system<|message|># Tools{% for t in tools %}\n{{ t.function.name }}{% endfor %}"
    "<|eot|>{%- endif -%}\n"
    "{%- for m in messages -%}\n"
    "{%- if m.role == 'assistant' and m.tool_calls -%}"
    "{%- for c in m.tool_calls -%}<|start|>assistant to={{ c.function.name }}<|message|><atem:function_calls>\n"
    "<atem:invoke name=\"{{ c.function.name }}\">\n"
    "{% for k, v in c.function.arguments | items %}<atem:parameter name=\"{{ k }}\">{{ v }}</atem:parameter>\n"
    "{% endfor %}</atem:invoke>\n</atem:function_calls>{% if loop.last %}<|eot|>{% else %}<|eom|>{% endif %}"
    "{%- endfor -%}\n"
    "{%- elif m.role == 'assistant' -%}<|start|>assistant to=user<|message|>{{ m.content }}<|eot|>\n"
    "{%- elif m.role == 'tool' -%}<|start|>tool {{ m.name }}<|message|><tool_output name=\"{{ m.name }}\">\n"
    "{{ m.content }}\n</tool_output><|eot|>\n"
    "{%- else -%}<|start|>{{ m.role }}<|message|>{{ m.content }}<|eot|>{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}";

inline const char *kHermesToolTemplate =
    "{%- if tools %}<|im_start|>system\n<tools>{% for t in tools %}\n{{ t.function.name }}{% endfor %}\n</tools>"
    "<|im_end|>\n{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n{{ m.content }}"
    "{%- for c in m.tool_calls %}\n<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

// Llama 3.x: a call is the answer itself, '{"name": ..., "parameters": ...}', results come
// back as ipython messages.
inline const char *kLlamaToolTemplate =
    "{%- for m in messages %}<|start_header_id|>{{ 'ipython' if m.role == 'tool' else m.role }}<|end_header_id|>\n\n"
    "{%- if m.tool_calls %}{% set c = m.tool_calls[0].function %}{\"name\": \"{{ c.name }}\", \"parameters\": "
    "{{ c.arguments | tojson }}}{% else %}{{ m.content }}{% endif %}<|eot_id|>{% endfor %}"
    "{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

inline TinyDecoderSpec llama_tool_spec() {
    TinyDecoderSpec s = think_chat_spec();
    s.arch = "llama";
    s.control_tokens = {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
    s.eot_token = "<|eot_id|>";
    s.chat_template = kLlamaToolTemplate;
    return s;
}

inline TinyDecoderSpec atem_tool_spec() {
    TinyDecoderSpec s = atem_chat_spec();
    s.chat_template = kAtemToolTemplate;
    return s;
}

inline TinyDecoderSpec hermes_tool_spec() {
    TinyDecoderSpec s = think_chat_spec();
    s.arch = "qwen2";
    s.control_tokens = {"<|im_start|>", "<|im_end|>"};
    s.chat_template = kHermesToolTemplate;
    return s;
}

} // namespace muse::test
