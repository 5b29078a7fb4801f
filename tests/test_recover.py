"Recovery across architectures, resumption and the overlap check: what is awkward to show in nbs/08a_recover.ipynb."
import copy
import pytest, torch
from wanda_nb.models import tiny_model
from wanda_nb.arch import decoder_linears
from wanda_nb.prune import prune_model, model_sparsity
from wanda_nb.recover import (held_mask, mask_leaks, masked_finetune, lora_finetune, recon_fit, recovery_config,
                              check_overlap, batch_ids, fingerprint)

torch.set_num_threads(1)
FAMILIES = ['llama', 'mistral', 'qwen2', 'opt', 'gpt_neox', 'gpt2']
POOL = torch.randint(0, 512, (16, 32), generator=torch.Generator().manual_seed(0))  # (n, seqlen) random token windows
SMALL = dict(tokens=4 * 4 * 32, batch_size=4, seqlen=32)  # 4 steps

def _pruned(family, structure=None):
    dense = tiny_model(family)
    m = copy.deepcopy(dense)
    prune_model(m, None, 'magnitude', 0.5 if structure is None else None, structure=structure, progress=False)
    return dense, m

def _weights(m): return {l.full: l.module.weight.detach().clone() for l in decoder_linears(m)}

def _same(a, b): return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)

@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('kind', ['masked', 'recon', 'lora'])
def test_zeros_held_every_family(family, kind):
    "Every recovery keeps exactly the pruned zeros (GPT-2's transposed Conv1D included) and changes the kept weights."
    dense, m = _pruned(family)
    M, w0 = held_mask(m), _weights(m)
    cfg = recovery_config(kind, **SMALL, **(dict(nsamples=8) if kind == 'recon' else {}))
    fit = dict(masked=masked_finetune, recon=recon_fit, lora=lora_finetune)[kind]
    if kind == 'lora' and family == 'gpt2':
        with pytest.raises(ValueError, match='needs nn.Linear'): fit(m, dense, POOL, M, cfg)
        return
    r = fit(m, dense, POOL, M, cfg)
    assert mask_leaks(m, M) == 0 and r['mask_leaks'] == 0
    assert _same(held_mask(m), M)  # no new zero either
    assert not _same(_weights(m), w0)
    if kind == 'lora': assert r['merge_max_abs_diff'] == 0.

def test_nm_structure_held():
    "A 2:4 pattern is still exactly 2:4 after masked fine-tuning."
    dense, m = _pruned('llama', '2:4')
    masked_finetune(m, dense, POOL, held_mask(m), recovery_config('masked', **SMALL))
    for l in decoder_linears(m):
        z = (l.weight == 0).view(l.weight.shape[0], -1, 4).sum(-1)
        assert (z == 2).all(), l.full

@pytest.mark.parametrize('kind', ['masked', 'lora'])
def test_resume_after_interruption(tmp_path, kind):
    "An interrupted run, restarted, ends with the weights and losses of an uninterrupted one (bit for bit)."
    dense, m0 = _pruned('qwen2')
    M, cfg = held_mask(m0), recovery_config(kind, tokens=8 * 4 * 32, batch_size=4, seqlen=32, loss='lm')
    fit = masked_finetune if kind == 'masked' else lora_finetune
    ref = copy.deepcopy(m0); rr = fit(ref, dense, POOL, M, cfg)
    def stop(step, loss, opt):
        if step == 5: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt): fit(copy.deepcopy(m0), dense, POOL, M, cfg, ckpt=tmp_path, every=3, on_step=stop)
    m = copy.deepcopy(m0); r = fit(m, dense, POOL, M, cfg, ckpt=tmp_path)
    assert r['resumed_from'] == 3 and r['train_loss'] == rr['train_loss'] and _same(_weights(m), _weights(ref))

def test_checkpoints_are_per_pruned_model(tmp_path):
    "Another pruned model (other sparsity) does not resume from this one's checkpoint."
    dense, a = _pruned('llama')
    masked_finetune(a, dense, POOL, held_mask(a), recovery_config('masked', **SMALL), ckpt=tmp_path)
    b = tiny_model('llama'); prune_model(b, None, 'magnitude', 0.6, progress=False)
    assert fingerprint(a) != fingerprint(b)
    r = masked_finetune(b, dense, POOL, held_mask(b), recovery_config('masked', **SMALL), ckpt=tmp_path)
    assert r['resumed_from'] == 0 and len(list(tmp_path.iterdir())) == 2

def test_sparsity_unchanged_and_flags_restored():
    dense, m = _pruned('mistral')
    m.model.embed_tokens.weight.requires_grad_(False)  # a caller's choice survives
    s0 = model_sparsity(m)
    recon_fit(m, dense, POOL, held_mask(m), recovery_config('recon', **SMALL, nsamples=8))
    assert model_sparsity(m) == s0 and not m.model.embed_tokens.weight.requires_grad
    assert all(p.requires_grad for n, p in m.named_parameters() if 'embed_tokens' not in n) and not m.training

def test_overlap_hand_checkable():
    "A training window sharing one 8-token run with an evaluation window is refused; shifting one token breaks it."
    ev = {'toy': torch.arange(100, 116)[None]}  # (1, 16)
    train = torch.cat([torch.arange(0, 8), torch.arange(104, 112)])[None]  # tokens 104..111 occur in the eval window
    with pytest.raises(ValueError, match="overlaps the evaluation text: {'toy': 1}"): check_overlap(train, ev, k=8)
    assert check_overlap(train, ev, k=9) == {'toy': 0}
    assert check_overlap(torch.arange(200, 232)[None], ev, k=8) == {'toy': 0}

def test_batches_are_a_prefix():
    "Batch i depends only on (seed, i): a longer run begins with the shorter run's batches."
    pool = torch.arange(7)[:, None]
    a = [batch_ids(pool, i, 3, seed=5) for i in range(10)]
    assert all(torch.equal(x, batch_ids(pool, i, 3, seed=5)) for i, x in enumerate(a))
    flat = torch.cat(a).flatten().tolist()
    assert sorted(flat[:7]) == list(range(7)) and sorted(flat[7:14]) == list(range(7))

def test_bad_configurations():
    for kw, msg in [(dict(tokens=0), 'positive int'), (dict(tokens=1.5), 'positive int'), (dict(tokens=8, lr=0), 'lr must'),
                    (dict(tokens=8, loss='mse'), "loss must"), (dict(tokens=8, modules='q'), "modules must"),
                    (dict(tokens=8, batch_size=0), 'batch_size'), (dict(tokens=8, nsamples=4), 'takes no')]:
        with pytest.raises(ValueError, match=msg): recovery_config('masked', **kw)
    dense, m = _pruned('llama')
    with pytest.raises(ValueError, match='not decoder linears'):
        masked_finetune(m, dense, POOL, held_mask(m), recovery_config('masked', tokens=8, modules=['lm_head']))
    with pytest.raises(ValueError, match='no pruning mask'): held_mask(dense)

def test_recovery_bench_samples_its_bench_with_the_sampler_asked(monkeypatch):
    """The bench inside recovery_bench draws its own calibration with the requested sampler: with the default 'official'
    sampler, SmolLM2 at seqlen 2,048 failed before any work (only 32 of 1,000 C4 documents are that long)."""
    import wanda_nb.analysis.recovery as R
    seen = {}
    class Stop(Exception): pass
    def fake_bench(*a, **kw): seen.update(kw); raise Stop()
    monkeypatch.setattr(R, 'bench', fake_bench)
    with pytest.raises(Stop): R.recovery_bench('stories260K', sampler='concat', seqlen=2048, nsamples=128)
    assert seen['sampler'] == 'concat' and seen['seqlen'] == 2048
