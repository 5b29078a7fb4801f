"""Reference masks for every method × structure × group on stories260K and the tiny families.

`python tests/ref_masks.py` writes `tests/data/ref_masks.npz`; it was first run at commit f523c29, before the method
registry, the architecture adapter and the allocation axis existed, so `tests/test_ref_masks.py` proves that the
refactor left every mask (and every SparseGPT-updated weight) bit for bit unchanged. Only the public API is used.
At f523c29 a global ranking was `group='global'` and a per-block schedule `block_sparsity=[...]`; since the
allocation axis they are `allocation='global'` and `allocation=[...]` (the labels below name the same settings).
"""
import hashlib, os, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
from pathlib import Path
import numpy as np, torch
from wanda_nb.models import load_model, tiny_model
from wanda_nb.data import load_corpus
from wanda_nb.calib import calib_windows
from wanda_nb.prune import prune_model
from wanda_nb.arch import decoder_blocks, block_linears

FAMILIES = ['llama', 'mistral', 'qwen2', 'opt', 'gpt_neox', 'gpt2']
OUT = Path(__file__).parent/'data'/'ref_masks.npz'

def configs(nm_widths=(4, 8)):
    "(label, prune_model kwargs) for every method × structure × group the pruner accepts."
    c = []
    for s in (0.5, 0.7):
        for g in ('layer', 'row', 'variant'): c.append((f'magnitude-{g}-{s}', dict(method='magnitude', sparsity=s, group=g)))
        c.append((f'magnitude-global-{s}', dict(method='magnitude', sparsity=s, allocation='global')))
        for g in ('row', 'layer', 'variant'): c.append((f'wanda-{g}-{s}', dict(method='wanda', sparsity=s, group=g)))
        c.append((f'sparsegpt-{s}', dict(method='sparsegpt', sparsity=s)))
    for st in ['2:4'] + (['4:8'] if 8 in nm_widths else []):
        for meth in ('magnitude', 'wanda', 'sparsegpt'): c.append((f'{meth}-{st}', dict(method=meth, structure=st)))
    for meth in ('wanda', 'sparsegpt'): c.append((f'{meth}-trueseq-0.5', dict(method=meth, sparsity=0.5, true_sequential=True)))
    c.append(('wanda-blocks1-0.5', dict(method='wanda', sparsity=0.5, blocks=[1])))
    c.append(('wanda-dense_inputs-0.5', dict(method='wanda', sparsity=0.5, dense_inputs=True)))
    return c

def per_block(nb):
    "Explicit per-block sparsities (OWL-like) for a model of `nb` blocks."
    return [(f'{meth}-perblock', dict(method=meth, allocation=[0.4 + 0.2 * i / max(nb - 1, 1) for i in range(nb)]))
            for meth in ('wanda', 'magnitude', 'sparsegpt')]

def weights(model):
    "(d_out, d_in) weights of every decoder linear, in walk order."
    out = []
    for b in decoder_blocks(model):
        for n, m in block_linears(b).items(): out.append(m.weight.data.T if type(m).__name__ == 'Conv1D' else m.weight.data)
    return out

def fingerprint(model):
    "Packed zero pattern of all decoder linears, and a sha256 of their float32 values."
    ws = weights(model)
    bits = np.packbits(np.concatenate([(w == 0).reshape(-1).numpy() for w in ws]))
    h = hashlib.sha256(b''.join(w.float().contiguous().numpy().tobytes() for w in ws)).hexdigest()
    return bits, h

# SparseGPT's updated weights are float32 arithmetic through the CPU's BLAS, whose kernels differ by instruction set: on
# another CPU (the reference reproduces bit for bit on the AMD EPYC machines of earlier sessions; an Intel Xeon with
# AVX-512, on 2026-12-07, gives other roundings) every
# SparseGPT weight differs in its last bits and a few near-tied mask choices flip (4 of 73,728 bits in 3 tiny-model
# configurations, none on stories260K). Magnitude and Wanda masks do not move. So across machines SparseGPT is held to
# its masks within this fraction of flipped bits, and bit-for-bit equality of its weights is checked on the machine
# itself (the block-at-once path against the one-layer path, offload against in-memory: tests/test_sparsegpt_fast.py).
SPARSEGPT_FLIPS = 1e-4

def flipped(ref_bits, bits) -> float:
    "The fraction of mask bits that differ between two packed fingerprints."
    a, b = np.unpackbits(ref_bits), np.unpackbits(bits)
    return float((a != b).mean()) if a.shape == b.shape else 1.

def cases():
    "(model label, model factory, calibration ids, configs)."
    tok_model, tok = load_model('stories260K')
    cal = calib_windows(load_corpus('c4'), tok, nsamples=16, seqlen=128, seed=0).ids
    yield 'stories260K', lambda: load_model('stories260K')[0], cal, configs(nm_widths=(4,)) + per_block(5)   # down_proj d_in=172: no 4:8
    ids = torch.randint(3, 512, (8, 32), generator=torch.Generator().manual_seed(0))
    for f in FAMILIES: yield f'tiny-{f}', (lambda f=f: tiny_model(f)), ids, configs() + per_block(2)

def compute():
    "{'<model>/<config>': (bits, sha)} from the current code."
    torch.set_num_threads(1); res = {}
    for label, make, ids, cfgs in cases():
        for name, kw in cfgs:
            m = make(); prune_model(m, None if kw['method'] == 'magnitude' else ids, batch_size=4, progress=False, **kw)
            res[f'{label}/{name}'] = fingerprint(m)
    return res

if __name__ == '__main__':
    if OUT.exists() and '--overwrite' not in sys.argv: sys.exit(f"{OUT} exists: it is the pre-refactor reference; pass --overwrite only on purpose")
    res = compute()
    np.savez_compressed(OUT, **{k + '|bits': v[0] for k, v in res.items()}, **{k + '|sha': np.array(v[1]) for k, v in res.items()})
    print(f"{len(res)} configurations -> {OUT} ({OUT.stat().st_size:,} bytes)")
