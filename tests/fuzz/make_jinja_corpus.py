"""Regenerates fuzz-jinja's seed corpus (committed in corpus-jinja): a few small real
chat templates from ../shared/templates, each followed by a NUL byte and a JSON render
context (messages with an image part, a tool call and a tool result, plus tools), and
the same templates alone (fuzz-jinja then renders them with its built-in context).
Run from anywhere: python3 tests/fuzz/make_jinja_corpus.py"""
import json
from pathlib import Path

HERE = Path(__file__).parent
TEMPLATES = HERE.parent.parent.parent / "shared" / "templates"
OUT = HERE / "corpus-jinja"
# Small templates with different shapes: tool blocks, reasoning, namespaces, macros.
NAMES = ["Qwen-Qwen2.5-7B-Instruct", "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "google-gemma-2-2b-it",
         "microsoft-Phi-3.5-mini-instruct", "moonshotai-Kimi-K2", "LFM2-8B-A1B", "llama-cpp-deepseek-r1",
         "muse-glimmer"]

TOOLS = [{"type": "function", "function": {
    "name": "zoom", "description": "Crop a region of an image.",
    "parameters": {"type": "object", "properties": {
        "image": {"type": "integer"}, "x0": {"type": "integer"}, "y0": {"type": "integer"},
        "x1": {"type": "integer"}, "y1": {"type": "integer"}}, "required": ["x0", "y0", "x1", "y1"]}}},
    {"type": "function", "function": {
        "name": "calculator", "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]}}}]
CONTEXT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the corner?"}]},
        {"role": "assistant", "reasoning_content": "Zoom first.", "content": "",
         "tool_calls": [{"id": "call_0", "type": "function",
                         "function": {"name": "zoom", "arguments": {"x0": 0, "y0": 0, "x1": 32, "y1": 32}}}]},
        {"role": "tool", "tool_call_id": "call_0", "name": "zoom", "content": "<__media__>"},
        {"role": "assistant", "content": "A red square."},
        {"role": "user", "content": "And 2*21?"}],
    "tools": TOOLS, "add_generation_prompt": True, "enable_thinking": True,
    "bos_token": "<s>", "eos_token": "</s>"}


def main():
    OUT.mkdir(exist_ok=True)
    ctx = json.dumps(CONTEXT, separators=(",", ":")).encode()
    for name in NAMES:
        src = (TEMPLATES / f"{name}.jinja").read_bytes()
        (OUT / f"{name}-ctx").write_bytes(src + b"\0" + ctx)
        (OUT / f"{name}").write_bytes(src)


if __name__ == "__main__":
    main()
