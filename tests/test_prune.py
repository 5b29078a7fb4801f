"Property and parity tests of wanda_nb.prune that are awkward in a notebook: every family × method, batching, a naive reference."
import copy, os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import pytest, torch
from wanda_nb.calib import collect_stats
from wanda_nb.mask import row_mask, wanda_score
from wanda_nb.models import tiny_model
from wanda_nb.arch import block_linears, decoder_blocks, linear_groups, capture_inputs, weight as _weight
from wanda_nb.methods import METHODS
from wanda_nb.prune import model_sparsity, prune_model, sparsity_table
from wanda_nb.sparsegpt import sparsegpt_prune

torch.set_num_threads(1)
FAMILIES = ['llama', 'mistral', 'qwen2', 'opt', 'gpt_neox', 'gpt2']
IDS = torch.randint(3, 512, (6, 24), generator=torch.Generator().manual_seed(0))

def linears(model): return [(i, n, m) for i, b in enumerate(decoder_blocks(model)) for n, m in block_linears(b).items()]

@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('method', [k for k, v in METHODS.items() if not v.quantizes])  # quantizing: test_quant
@pytest.mark.parametrize('structure', [None, '2:4'])
def test_family_method(family, method, structure):
    m = tiny_model(family)
    emb = [p.clone() for n, p in m.named_parameters() if 'emb' in n or 'wte' in n or 'wpe' in n]
    r = prune_model(m, IDS, method, 0.5 if structure is None else None, structure, batch_size=4, progress=False)
    assert len(r.sparsity) == len(linears(m))
    for i, n, lin in linears(m):
        W = _weight(lin) # (d_out, d_in), also for GPT-2's Conv1D
        if structure: assert ((W == 0).view(W.shape[0], -1, 4).sum(-1) >= 2).all()
        elif method == 'wanda': assert ((W == 0).sum(1) == W.shape[1] // 2).all()
        else: assert abs((W == 0).float().mean().item() - 0.5) < 0.01
    assert [p for n, p in m.named_parameters() if 'emb' in n or 'wte' in n or 'wpe' in n] and \
        all(torch.equal(a, b) for a, b in zip(emb, [p for n, p in m.named_parameters() if 'emb' in n or 'wte' in n or 'wpe' in n]))
    assert torch.isfinite(m(IDS).logits).all()

@pytest.mark.parametrize('method', ['wanda', 'sparsegpt'])
def test_batching_does_not_change_masks(method):
    ref = None
    for bs in (1, 4, 6):
        m = tiny_model('llama'); prune_model(m, IDS, method, 0.5, batch_size=bs, progress=False)
        zeros = [(_weight(l) == 0) for _, _, l in linears(m)]
        if ref is None: ref = zeros
        else: assert all(torch.equal(a, b) for a, b in zip(ref, zeros))

def _naive(model, ids, method, s):
    "Reference: before pruning block i, measure its layers with full-model forward passes (blocks < i already pruned)."
    for b in decoder_blocks(model):
        lin = block_linears(b)
        with torch.no_grad(), collect_stats(lin, hessian=method == 'sparsegpt') as st: model(ids, use_cache=False)
        for n, l in lin.items():
            W = _weight(l)
            if method == 'wanda': W.masked_fill_(row_mask(wanda_score(W, st[n].norm), s), 0)
            else: W.copy_(sparsegpt_prune(W, st[n].H, s)[0])

@pytest.mark.parametrize('family', ['llama', 'gpt2', 'opt'])
@pytest.mark.parametrize('method', ['wanda', 'sparsegpt'])
def test_matches_naive_full_model_reference(family, method):
    a, b = tiny_model(family), tiny_model(family)
    prune_model(a, IDS, method, 0.5, progress=False)
    _naive(b, IDS, method, 0.5)
    for (_, n, la), (_, _, lb) in zip(linears(a), linears(b)):
        if method == 'wanda': assert torch.equal(_weight(la) == 0, _weight(lb) == 0), n
        else: torch.testing.assert_close(_weight(la), _weight(lb), atol=1e-4, rtol=1e-4)

def test_global_magnitude_exact_count():
    m = tiny_model('llama'); prune_model(m, None, 'magnitude', 0.3, allocation='global', progress=False)
    t = sparsity_table(m)
    assert t.zeros.sum() == int(t.numel.sum() * 0.3)
    assert t.sparsity.std() > 0 # a global ranking does not give every matrix the same share

@pytest.mark.parametrize('family', FAMILIES)
def test_groups_cover_every_linear_once(family):
    m = tiny_model(family); b = decoder_blocks(m)[0]
    g = linear_groups(b, capture_inputs(m, IDS[:2]))
    flat = [n for grp in g for n in grp]
    assert sorted(flat) == sorted(block_linears(b)) and len(g) >= 3

def test_true_sequential_and_offload_run_everywhere():
    for f in FAMILIES:
        m = tiny_model(f); r = prune_model(m, IDS, 'sparsegpt', 0.5, true_sequential=True, offload=True, device='cpu', recon=True, progress=False)
        assert all(0 < e < 1 for e in r.recon.values()) and model_sparsity(m)['linear'] >= 0.5

def test_hooks_removed_after_failure():
    m = tiny_model('llama')
    with pytest.raises(IndexError): prune_model(m, torch.full((2, 8), 10**6), 'wanda', progress=False)
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())

def test_train_mode_restored_and_report_config():
    m = tiny_model('opt').train()
    r = prune_model(m, IDS, 'wanda', 0.5, progress=False)
    assert m.training and r.config['model'] == 'tiny-opt' and r.config['nsamples'] == 6 and r.config['seqlen'] == 24
    assert set(r.timings) == {'allocation', 'capture', 'stats', 'mask', 'forward', 'total'}

def test_bad_arguments_leave_weights_untouched():
    m = tiny_model('gpt2'); before = [p.clone() for p in m.parameters()]
    for kw in [dict(sparsity=1.0), dict(structure='3:2'), dict(structure='2:3'), dict(method='magnitude', group='variant', structure='2:4'),
               dict(method='wanda', allocation='global'), dict(calib=torch.rand(2, 8)), dict(batch_size=0)]:
        with pytest.raises(ValueError): prune_model(m, **(dict(calib=IDS) | kw), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))

def test_conv1d_stats_match_linear_view():
    "GPT-2's Conv1D input statistics equal those computed by hand from the block's input through ln_1."
    m = tiny_model('gpt2'); b = decoder_blocks(m)[0]
    inps = capture_inputs(m, IDS)
    with torch.no_grad(), collect_stats({'c_attn': b.attn.c_attn}, hessian=True) as st: [b(h, *a, **k) for h, a, k in inps]
    X = torch.cat([b.ln_1(h).reshape(-1, h.shape[-1]) for h, _, _ in inps])
    torch.testing.assert_close(st['c_attn'].norm, X.norm(dim=0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(st['c_attn'].H, 2 * X.T @ X / X.shape[0], atol=1e-4, rtol=1e-4)

def test_a_method_variant_is_used_as_given():
    "`method` may be a `Method` (a variant of a registered one): it prunes, the registry is untouched, the report names it."
    import dataclasses
    from wanda_nb.mask import magnitude_score
    inverse = dataclasses.replace(METHODS['magnitude'], score=lambda W, st: -magnitude_score(W))   # prunes the largest
    a, b = tiny_model('llama'), tiny_model('llama')
    ra = prune_model(a, method='magnitude', sparsity=0.5, progress=False)
    rb = prune_model(b, method=inverse, sparsity=0.5, progress=False)
    wa = [m.weight for n, m in a.named_modules() if n.endswith('q_proj')][0]
    wb = [m.weight for n, m in b.named_modules() if n.endswith('q_proj')][0]
    assert ((wa == 0) & (wb == 0)).sum() == 0 and (wa == 0).float().mean() == 0.5   # complementary masks: the variant ran
    assert ra.config['method'] == rb.config['method'] == 'magnitude' and 'impl' not in rb.config
    c = tiny_model('llama'); prune_model(c, method='magnitude', sparsity=0.5, progress=False)   # the registry's, after the variant
    assert all(torch.equal(x.weight == 0, y.weight == 0) for x, y in zip(a.modules(), c.modules()) if isinstance(x, torch.nn.Linear))
