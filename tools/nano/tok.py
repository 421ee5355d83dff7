"""The nano tokenizer: a SentencePiece BPE vocabulary trained on world text, stored in the GGUF
as an SPM ("llama") vocab. Chat markers are single tokens (trained as user-defined symbols so
they are never split, exported with token type CONTROL).

Tokenization = llama.cpp's with parse_special=true: the text is split on special-token strings,
each fragment is encoded by SentencePiece (no dummy prefix, identity normalization, so the
llama.cpp SPM tokenizer with add_space_prefix=false gives the same pieces).
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence, Tuple

import world

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "tokenizer", "nano.model")
SPECIALS = list(world.SPECIAL_TOKENS)          # user-defined symbols (ids 3..)
CONTROL_TEXT = ["<s>", "</s>"]                 # spm control pieces, bos/eos


def train(out_prefix: str = os.path.join(HERE, "tokenizer", "nano"), vocab_size: int = 2048,
          n_samples: int = 4000, seed0: int = 1_000_000) -> str:
    import sentencepiece as spm
    os.makedirs(os.path.dirname(out_prefix), exist_ok=True)
    texts = world.corpus_text(n_samples, seed0)
    pat = re.compile("|".join(re.escape(s) for s in SPECIALS + CONTROL_TEXT))
    lines = []
    for t in texts:
        for frag in pat.split(t):
            for ln in frag.split("\n"):
                if ln:
                    lines.append(ln)
    corpus = out_prefix + ".corpus.txt"
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=out_prefix, model_type="bpe", vocab_size=vocab_size,
        character_coverage=1.0, byte_fallback=True, split_digits=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False, normalization_rule_name="identity",
        user_defined_symbols=SPECIALS + ["\n"], unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        shuffle_input_sentence=False, input_sentence_size=0, num_threads=1, hard_vocab_limit=False,
        max_sentencepiece_length=16, minloglevel=2)
    os.remove(corpus)
    return out_prefix + ".model"


class Tokenizer:
    def __init__(self, path: str = DEFAULT_MODEL):
        import sentencepiece as spm
        self.path = path
        self.sp = spm.SentencePieceProcessor(model_file=path)
        self.n_vocab = self.sp.get_piece_size()
        self.special = {s: self.sp.piece_to_id(s) for s in SPECIALS + CONTROL_TEXT}
        self.bos = self.sp.bos_id()
        self.eos = self.sp.eos_id()
        self.eot = self.special["<|eot|>"]
        self.eom = self.special["<|eom|>"]
        self.patch = self.special["<|patch|>"]
        self._pat = re.compile("(" + "|".join(re.escape(s) for s in
                                               sorted(self.special, key=len, reverse=True)) + ")")

    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for frag in self._pat.split(text):
            if not frag:
                continue
            if frag in self.special:
                ids.append(self.special[frag])
            else:
                ids.extend(self.sp.encode(frag))
        return ids

    def encode_with_mask(self, text: str, spans: Sequence[Tuple[int, int]]):
        """ids + per-token loss flags; span boundaries must fall on fragment/word boundaries."""
        cuts = sorted({0, len(text)} | {p for s in spans for p in s})
        ids, mask = [], []
        for a, b in zip(cuts[:-1], cuts[1:]):
            inside = any(s <= a and b <= e for s, e in spans)
            t = self.encode(text[a:b])
            ids.extend(t)
            mask.extend([inside] * len(t))
        return ids, mask

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        inv = {v: k for k, v in self.special.items()}
        buf: List[int] = []
        for i in ids:
            if i in inv:
                if buf:
                    out.append(self.sp.decode(buf))
                    buf = []
                out.append(inv[i])
            else:
                buf.append(i)
        if buf:
            out.append(self.sp.decode(buf))
        return "".join(out)

    def gguf_vocab(self):
        """(tokens, scores, token_types) for tokenizer.ggml.* (llama.cpp token type ids:
        1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)."""
        toks, scores, types = [], [], []
        chat = set(SPECIALS)
        for i in range(self.n_vocab):
            p = self.sp.id_to_piece(i)
            toks.append(p)
            scores.append(float(self.sp.get_score(i)))
            if self.sp.is_unknown(i):
                t = 2
            elif self.sp.is_control(i) or p in chat:
                t = 3
            elif self.sp.is_byte(i):
                t = 6
            elif self.sp.is_unused(i):
                t = 5
            elif p == "\n":
                t = 4
            else:
                t = 1
            types.append(t)
        return toks, scores, types


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="train the nano SPM tokenizer")
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--out", default=os.path.join(HERE, "tokenizer", "nano"))
    a = ap.parse_args()
    path = train(a.out, a.vocab, a.samples)
    tk = Tokenizer(path)
    print(path, "vocab", tk.n_vocab)
    s = world.make_sample(3)
    t = world.expand_media(world.sample_text(s))
    ids = tk.encode(t)
    print(len(ids), "tokens;", [tk.sp.id_to_piece(i) for i in ids[:60]])
    assert tk.decode(ids) == t
