"""SparseGPT's block-at-once path (`sparsegpt_prune_many`, used by `prune_model`) against the one-layer path it replaced,
and offloaded pruning against in-memory pruning: bit for bit on CPU in float32 (and bfloat16 where stated).

On CPU the default path factors H⁻¹ once per input group and walks each weight alone, so the arithmetic is the
one-layer path's, operation for operation; the stacked walk (the GPU layout) is also checked here bit for bit. The
GPU-only parts (CUDA graphs, streams) are checked in nbs/05_sparsegpt.ipynb (`#| cuda`) and benchmarks/prune_speed.py.
"""
import dataclasses, os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pytest, torch
import ref_masks
from wanda_nb.calib import host_inputs
from wanda_nb.methods import METHODS
from wanda_nb.models import load_model, tiny_model
from wanda_nb.prune import prune_model
from wanda_nb.sparsegpt import hessian, sparsegpt_prune, sparsegpt_prune_many

torch.set_num_threads(1)
TINY_IDS = torch.randint(3, 512, (8, 32), generator=torch.Generator().manual_seed(0))

@pytest.fixture(scope='module')
def stories():
    "(factory, calibration ids) exactly as tests/ref_masks.py makes them for stories260K."
    label, make, ids, _ = next(ref_masks.cases())
    assert label == 'stories260K'
    return make, ids

def _one_by_one():
    "The registry's sparsegpt without `solve_many`: every layer through `sparsegpt_prune` alone, as before."
    return dataclasses.replace(METHODS['sparsegpt'], solve_many=None)

@pytest.mark.parametrize('structure', [None, (2, 4), (4, 8)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('stack', [False, True])
def test_sparsegpt_many_equals_one_by_one(structure, dtype, stack):
    g = torch.Generator().manual_seed(0)
    Ha = hessian(torch.randn(600, 64, generator=g) @ torch.randn(64, 64, generator=g))
    Hb = hessian(torch.randn(300, 96, generator=g)); Hb[:, 5] = Hb[5, :] = 0 # a dead input
    Ws = [torch.randn(r, d, generator=g).to(dtype) for r, d in ((40, 64), (24, 64), (16, 96), (8, 64))]
    Hs = [Ha, Ha.clone(), Hb, Ha]
    ref = [sparsegpt_prune(W, H, 0.5, structure, blocksize=32) for W, H in zip(Ws, Hs)]
    got = sparsegpt_prune_many(Ws, Hs, 0.5, structure, blocksize=32, stack=stack)
    for (w0, m0), (w1, m1) in zip(ref, got):
        assert w1.dtype == dtype and torch.equal(m0, m1) and torch.equal(w0, w1)

@pytest.mark.parametrize('label,kw', [('sparsegpt-0.5', dict(sparsity=0.5)), ('sparsegpt-0.7', dict(sparsity=0.7)),
                                      ('sparsegpt-2:4', dict(structure='2:4')),
                                      ('sparsegpt-trueseq-0.5', dict(sparsity=0.5, true_sequential=True))])
def test_sparsegpt_stories260K_unchanged(stories, label, kw):
    "Masks equal the references saved before the change (and their weights, on the reference's CPU); float32 weights equal the one-layer path run now."
    make, ids = stories
    m = make(); prune_model(m, ids, 'sparsegpt', batch_size=4, progress=False, **kw)
    bits, sha = ref_masks.fingerprint(m)
    ref = np.load(ref_masks.OUT)
    assert ref_masks.flipped(ref[f'stories260K/{label}|bits'], bits) <= ref_masks.SPARSEGPT_FLIPS # 0 on both CPUs seen
    old = make(); prune_model(old, ids, _one_by_one(), batch_size=4, progress=False, **kw)   # a Method: the variant itself
    assert all(torch.equal(a, b) for a, b in zip(ref_masks.weights(m), ref_masks.weights(old)))

@pytest.mark.parametrize('method,kw', [('wanda', dict(sparsity=0.5)), ('wanda', dict(structure='2:4')),
                                       ('sparsegpt', dict(sparsity=0.5)), ('sparsegpt', dict(structure='2:4')),
                                       ('sparsegpt', dict(sparsity=0.5, true_sequential=True))])
@pytest.mark.parametrize('model', ['stories260K', 'tiny-llama', 'tiny-gpt2'])
def test_offload_bit_identical(stories, method, kw, model):
    "offload=True (blocks moved in turn, activations in host memory, streamed batch by batch) changes no bit."
    make, ids = stories if model == 'stories260K' else ((lambda: tiny_model(model[5:])), TINY_IDS)
    a, b = make(), make()
    prune_model(a, ids, method, batch_size=4, progress=False, **kw)
    prune_model(b, ids, method, batch_size=4, progress=False, offload=True, device='cpu', **kw)
    assert all(torch.equal(x, y) for x, y in zip(ref_masks.weights(a), ref_masks.weights(b)))

def test_offload_host_inputs_pinned_only_for_a_gpu():
    x = [(torch.randn(2, 3), (), {'pos': torch.arange(3)})]
    h = host_inputs(x, pin=False)
    assert not h[0][0].is_pinned() and torch.equal(h[0][0], x[0][0]) and torch.equal(h[0][2]['pos'], x[0][2]['pos'])
