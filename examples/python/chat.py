"""A multimodal reasoning turn from Python: image + question, reasoning streamed dimmed,
then the answer and the token accounting.

    PYTHONPATH=bindings/python python examples/python/chat.py MODEL.gguf MMPROJ.gguf IMAGE.png "question" [--budget N]
"""
import argparse
import sys

import muse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("mmproj")
    ap.add_argument("image")
    ap.add_argument("question")
    ap.add_argument("--budget", type=int, default=None, help="thinking budget in tokens")
    ap.add_argument("--think", default="on", choices=["on", "off", "auto"])
    a = ap.parse_args()

    model = muse.Model(a.model, mmproj=a.mmproj)
    session = model.session()
    messages = [{"role": "user", "content": [{"type": "image", "image": muse.Image.open(a.image)},
                                             {"type": "text", "text": a.question}]}]
    for channel, text in session.chat_stream(messages, thinking=a.think, thinking_budget=a.budget, max_tokens=512):
        if channel == "reasoning":
            sys.stderr.write(text)
        elif channel == "answer":
            sys.stdout.write(text)
        sys.stdout.flush()
    r = session.last_response
    print()
    print(f"[reasoning {r.usage['reasoning_tokens']} tokens ({r.usage['reasoning_end']}), "
          f"answer: {r.answer.strip()!r}]", file=sys.stderr)


if __name__ == "__main__":
    main()
