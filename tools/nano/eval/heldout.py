"""The fixed held-out set shared by eval.py (PyTorch) and eval_muse.py (muse's engine):
world seeds 900_000_000 + i, far from the training streams (seed * 1_000_003 + i)."""
import world

HELDOUT_SEED0 = 900_000_000


def heldout(n: int, kinds=("plain",)):
    out, s = [], HELDOUT_SEED0
    while len(out) < n:
        smp = world.make_sample(s)
        s += 1
        if smp["kind"] in kinds:
            out.append(smp)
    return out
