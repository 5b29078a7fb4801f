"""Calibration spread over two processes (torch.distributed, gloo, CPU) against one process.

Each rank computes the one-process result itself (same thread count, same batches) and the two-process result
(`distributed=True`: its share of the windows, statistics summed over the ranks). Wanda, RIA and magnitude must be bit
for bit the same; SparseGPT (float32 Gram sums added in another order) within float tolerance; the two ranks must
agree with each other exactly in every case.
"""
import hashlib, os, tempfile
import pytest, torch, torch.distributed as dist, torch.multiprocessing as mp

CASES = [('wanda', dict(method='wanda', sparsity=0.5)), ('wanda-2:4', dict(method='wanda', structure='2:4')),
         ('wanda-layer', dict(method='wanda', sparsity=0.5, group='layer')),
         ('wanda-trueseq', dict(method='wanda', sparsity=0.5, true_sequential=True)),
         ('wanda-dense_inputs', dict(method='wanda', sparsity=0.5, dense_inputs=True)),
         ('wanda-offload', dict(method='wanda', sparsity=0.5, offload=True)), ('ria', dict(method='ria', sparsity=0.5)),
         ('wanda-owl', dict(method='wanda', sparsity=0.6, allocation='owl')),
         ('magnitude', dict(method='magnitude', sparsity=0.5)), ('sparsegpt', dict(method='sparsegpt', sparsity=0.5)),
         ('sparsegpt-2:4', dict(method='sparsegpt', structure='2:4'))]
EXACT = {n for n, kw in CASES if kw['method'] != 'sparsegpt'}
FEW = ('wanda', 'wanda-2:4', 'magnitude', 'sparsegpt') # on the other models: Conv1D weights, real weights

def _models():
    "(label, factory, calibration ids, cases): 9 windows, so that batches of 2 deal 3 batches to rank 0, 2 to rank 1."
    from wanda_nb.models import load_model, tiny_model
    from wanda_nb.data import load_corpus
    from wanda_nb.calib import calib_windows
    ids = torch.randint(3, 512, (9, 32), generator=torch.Generator().manual_seed(0))
    few = [c for c in CASES if c[0] in FEW]
    yield 'tiny-llama', lambda: tiny_model('llama'), ids, CASES
    yield 'tiny-gpt2', lambda: tiny_model('gpt2'), ids, few
    tok = load_model('stories260K')[1]
    yield 'stories260K', lambda: load_model('stories260K')[0], calib_windows(load_corpus('c4'), tok, nsamples=9, seqlen=64).ids, few

def _weights(model):
    from wanda_nb.arch import decoder_linears
    return [l.weight.detach().float().clone() for l in decoder_linears(model)]

def _worker(rank, world, init, out):
    os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=world)
    from wanda_nb.prune import prune_model
    from wanda_nb.calib import dense_stats
    res = {}
    try:
        for label, make, ids, cases in _models():
            one, many = dense_stats(make(), ids, batch_size=2), dense_stats(make(), ids, batch_size=2, distributed=True)
            res[label, 'dense_stats'] = dict(exact=all(torch.equal(one[k].sq, many[k].sq) and one[k].n == many[k].n for k in one))
            for name, kw in cases:
                a, b = make(), make()
                prune_model(a, ids, batch_size=2, progress=False, **kw)
                rep = prune_model(b, ids, batch_size=2, progress=False, distributed=True, **kw)
                wa, wb = _weights(a), _weights(b)
                res[label, name] = dict(
                    masks_equal=all(torch.equal(x == 0, y == 0) for x, y in zip(wa, wb)),
                    weights_equal=all(torch.equal(x, y) for x, y in zip(wa, wb)),
                    mask_agreement=sum((x == 0).eq(y == 0).sum().item() for x, y in zip(wa, wb)) / sum(x.numel() for x in wa),
                    max_rel_weight_diff=max(((x - y).norm() / x.norm()).item() for x, y in zip(wa, wb)),
                    sha=hashlib.sha256(b''.join(y.numpy().tobytes() for y in wb)).hexdigest(),
                    world_size=rep.config.get('world_size'))
        torch.save(res, f'{out}/rank{rank}.pt')
    finally: dist.destroy_process_group()

@pytest.fixture(scope='module')
def ranks():
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(2, f'file://{d}/rendezvous', d), nprocs=2, join=True)
        return [torch.load(f'{d}/rank{r}.pt') for r in range(2)]

def test_dense_stats_bit_identical(ranks):
    for r in ranks:
        for (label, name), v in r.items():
            if name == 'dense_stats': assert v['exact'], label

def test_exact_methods_bit_identical(ranks):
    for r in ranks:
        bad = [k for k, v in r.items() if k[1] in EXACT and not (v['masks_equal'] and v['weights_equal'])]
        assert not bad, f"two processes changed these masks: {bad}"
        assert all(v['world_size'] == 2 for k, v in r.items() if k[1] != 'dense_stats')

def test_sparsegpt_within_tolerance(ranks):
    for r in ranks:
        for k, v in r.items():
            if k[1].startswith('sparsegpt'):
                assert v['mask_agreement'] > 0.99 and v['max_rel_weight_diff'] < 1e-3, (k, v)

def test_ranks_agree(ranks):
    a, b = ranks
    assert a.keys() == b.keys()
    bad = [k for k in a if k[1] != 'dense_stats' and a[k]['sha'] != b[k]['sha']]
    assert not bad, f"the ranks' pruned weights differ: {bad}"
