"Sparse inference (wanda_nb.infer): formats, kernels through Triton's interpreter and cross-compiled for sm_90, the sparse model."
import os, subprocess, sys, tempfile, textwrap, importlib.util
from pathlib import Path
import pytest, torch
from wanda_nb.infer import (compress_24, decompress_24, compress_bitmap, decompress_bitmap, bitmap_bytes, sparsify_model,
                            sparse_linears, weight_bytes, save_sparse, load_sparse, generate_greedy, Sparse24Linear)
from wanda_nb.mask import nm_mask, magnitude_score
from wanda_nb.models import load_model
from wanda_nb.prune import prune_model

root = Path(__file__).resolve().parent.parent
has_triton = importlib.util.find_spec('triton') is not None
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

def rand24(d_out, d_in, dtype=torch.bfloat16, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d_out, d_in, generator=g).to(dtype)
    return w.masked_fill(nm_mask(magnitude_score(w.float()), 2, 4), 0)

def test_compress_24_by_hand():
    v, m = compress_24(torch.tensor([[0., 3, 0, 5, 7, 0, 0, 0]]))
    assert v.tolist() == [[3., 5, 7, 0]] and hex(m.item()) == '0x4444444d'

@pytest.mark.parametrize('shape', [(8, 32), (172, 64), (64, 172), (5, 4), (3, 100)])
def test_compress_24_round_trip(shape):
    w = rand24(*shape)
    v, m = compress_24(w)
    assert v.shape == (shape[0], shape[1] // 2) and m.shape == (shape[0], -(-shape[1] // 32)) and m.dtype == torch.int32
    assert torch.equal(decompress_24(v, m, shape[1]), w)

def test_compress_24_refuses():
    with pytest.raises(ValueError, match="structure='2:4'"): compress_24(torch.ones(2, 8))
    with pytest.raises(ValueError, match='divisible by 4'): compress_24(torch.zeros(2, 6))

@pytest.mark.parametrize('density', [0., .3, .5, 1.])
def test_bitmap_round_trip_and_bytes(density):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(24, 100, generator=g).bfloat16(); w[torch.rand(24, 100, generator=g) >= density] = 0
    f = compress_bitmap(w)
    assert torch.equal(decompress_bitmap(f), w)
    nnz = int((w != 0).sum())
    assert bitmap_bytes(f) == 2 * nnz + 24 * 4 * (4 + 2) + 24 * 4    # values, (bits + int16 counts) per word, rowptr

_INTERP = r'''
import torch
from wanda_nb import infer as I
from wanda_nb.mask import nm_mask, magnitude_score
assert I._interpreting()
torch.manual_seed(0)
for d_out, d_in, M in [(64, 64, 1), (172, 64, 3), (64, 172, 16), (48, 256, 33), (16, 96, 64), (32, 512, 2)]:
    w = torch.randn(d_out, d_in).bfloat16(); w = w.masked_fill(nm_mask(magnitude_score(w.float()), 2, 4), 0)
    x = torch.randn(M, d_in).bfloat16(); v, m = I.compress_24(w)
    ref = (x.float() @ w.float().T).bfloat16()
    for k in (['mv', 'dot'] if M == 1 else ['dot']):
        y = I.sp24_matmul(x, v, m, d_in, kernel=k)
        assert torch.equal(y, ref), (d_out, d_in, M, k, (y.float() - ref.float()).abs().max())
    assert int(I._counters(x.device, 1).abs().sum()) == 0          # split-K counters reset by the last split
    lin = I.Sparse24Linear(v, m, d_in)
    assert torch.equal(lin(x.view(1, M, d_in)), ref.view(1, M, d_out))
for d_out, d_in, M, s in [(16, 64, 1, .5), (40, 172, 1, .7), (64, 96, 5, .6), (32, 256, 17, .5), (8, 64, 64, .9)]:
    w = torch.randn(d_out, d_in).bfloat16(); w[torch.rand(d_out, d_in) < s] = 0
    x = torch.randn(M, d_in).bfloat16()
    assert torch.equal(I.bitmap_matmul(x, I.compress_bitmap(w)), (x.float() @ w.float().T).bfloat16()), (d_out, d_in, M)
print('ok')
'''

@pytest.mark.skipif(not has_triton, reason='needs triton (its interpreter runs the kernels on CPU)')
def test_kernels_in_interpreter():
    "Every kernel, bitwise against the float32 product rounded once to bf16 (interpreter set before triton loads)."
    env = os.environ | dict(TRITON_INTERPRET='1', PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    r = subprocess.run([sys.executable, '-c', _INTERP], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), r.stderr[-3000:]

_XC = r'''
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from wanda_nb import infer as I
types = {'x_ptr': '*bf16', 'y_ptr': '*bf16', 'v_ptr': '*i32', 'm_ptr': '*i32', 'ws_ptr': '*fp32', 'cnt_ptr': '*i32',
         'vals_ptr': '*bf16', 'b_ptr': '*i32', 'o_ptr': '*i16', 'r_ptr': '*i32'}
for fn, c in [(I._sp24_dot_kernel, I._dot_configs()[1]), (I._sp24_mv_kernel, I._mv_configs()[0]),
              (I._bm_dot_kernel, I._bm_configs(True)[0]), (I._bm_mv_kernel, I._bm_configs(False)[0])]:
    consts = c.kwargs | dict(EVEN=True, INTERP=False)
    sig = {a: 'constexpr' if a in consts else types.get(a, 'i32') for a in fn.arg_names}
    attrs = {(i,): [['tt.divisibility', 16]] for i, a in enumerate(fn.arg_names) if a not in consts}
    k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs), target=GPUTarget('cuda', 90, 32),
                       options=dict(num_warps=c.num_warps, num_stages=c.num_stages))
    assert len(k.asm['cubin']) > 1000 and k.metadata.shared <= 227 * 1024, (fn.__name__, k.metadata.shared)
print('ok')
'''

@pytest.mark.skipif(not has_triton, reason='needs triton (and the ptxas in its wheel)')
def test_kernels_compile_for_h100_h200():
    "The GPU build of each kernel (sm_90), compiled on CPU: catches what the interpreter does not (layouts, shared memory)."
    env = os.environ | dict(PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop('TRITON_INTERPRET', None)
    r = subprocess.run([sys.executable, '-c', _XC], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), r.stderr[-3000:]

_SD = {}
def pruned():
    "A fresh stories260K, magnitude-pruned 2:4 (the masks computed once per session)."
    torch.set_num_threads(1)
    model, _ = load_model('stories260K')
    if not _SD: prune_model(model, method='magnitude', structure='2:4', progress=False); _SD.update(model.state_dict())
    else: model.load_state_dict(_SD)
    return model

def test_sparse_model_equals_masked_dense():
    ids = torch.randint(3, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    ref = pruned()(ids).logits
    sp = sparsify_model(pruned())
    assert len(sparse_linears(sp)) == 5 * 7
    assert torch.equal(sp(ids).logits, ref)
    wb = weight_bytes(sp)
    assert wb['values'] == wb['dense_linears'] // 2 and 0 < wb['meta'] < wb['dense_linears'] // 16 and wb['cslt'] == 0
    want = sp.generate(ids[:1, :8], max_new_tokens=12, do_sample=False, attention_mask=torch.ones(1, 8, dtype=torch.long))
    assert torch.equal(generate_greedy(sp, ids[:1, :8], 12), want[:, 8:])

def test_save_load_round_trip():
    model = sparsify_model(pruned())
    ids = torch.randint(3, 500, (1, 16), generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as d:
        save_sparse(model, d)
        back = load_sparse(d)
        assert {p.name for p in Path(d).iterdir()} == {'config.json', 'model.safetensors'}
    assert back.lm_head.weight is back.model.embed_tokens.weight
    assert all(isinstance(m, Sparse24Linear) for m in sparse_linears(back).values()) and len(sparse_linears(back)) == 35
    assert torch.equal(back(ids).logits, model(ids).logits)
    assert all(not p.is_meta for p in back.parameters()) and all(not b.is_meta for b in back.buffers())

def test_refuses_dense_models():
    model, _ = load_model('stories260K')
    with pytest.raises(ValueError, match="structure='2:4'"): sparsify_model(model)
    assert not sparse_linears(model)
    with pytest.raises(ValueError, match='sparsify_model'): save_sparse(model, tempfile.mkdtemp())

def test_decode_step_has_no_host_sync():
    "What CUDA-graph capture needs: under FakeTensorMode a .item() or a branch on a tensor would raise."
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import StaticCache
    model = sparsify_model(pruned())
    cache = StaticCache(config=model.config, max_cache_len=16)
    ids = torch.randint(3, 500, (2, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(ids, past_key_values=cache, use_cache=True)
        with FakeTensorMode(allow_non_fake_inputs=True):
            assert model(ids[:, -1:], past_key_values=cache, use_cache=True).logits.shape == (2, 1, 512)

@cuda
@pytest.mark.parametrize('tokens', [1, 16, 64])
def test_gpu_kernels_8b_shapes(tokens):
    "On a GPU: the real kernels against cuBLAS on the masked weight, within one bf16 ulp."
    from wanda_nb.infer import sp24_matmul, bitmap_matmul
    for d_out, d_in in [(1024, 4096), (14336, 4096), (4096, 14336)]:
        w = rand24(d_out, d_in).cuda(); x = torch.randn(tokens, d_in, device='cuda').bfloat16()
        ref = x.float() @ w.float().T
        y = sp24_matmul(x, *compress_24(w), d_in).float()
        assert ((y - ref).abs() <= 2**-7 * ref.abs() + 1e-3).all()
        wu = w.clone(); wu[torch.rand_like(wu, dtype=torch.float32) < .3] = 0
        y = bitmap_matmul(x, compress_bitmap(wu)).float(); ref = x.float() @ wu.float().T
        assert ((y - ref).abs() <= 2**-7 * ref.abs() + 1e-3).all()

def test_benchmark_runs_on_cpu(tmp_path):
    "The GPU benchmark's code paths, on CPU with tiny shapes (the device part only: the rest is minutes in the interpreter)."
    r = subprocess.run([sys.executable, str(root/'benchmarks/infer_speed.py'), '--cpu-smoke', '--parts', 'device', '--out', str(tmp_path),
                        '--commit', 'test'], capture_output=True, text=True, timeout=300,
                       env=os.environ | dict(PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"))
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    res = json.loads((tmp_path/'infer_speed.json').read_text())
    assert res['env']['commit'] == 'test' and res['parts']['device']['copy_bw'] > 0 and not res['errors']
    assert res['parts']['device']['read_bw'] > 0   # decode floors use the higher of the two bandwidths
    assert (tmp_path/'infer_speed.md').read_text().startswith('# What 2:4 buys')

def test_benchmark_merge(tmp_path):
    "`--merge`: parts from runs of one commit on one GPU, floors re-based on the measured device part; other runs refused."
    import json
    env = dict(commit='c' * 40, gpu='NVIDIA H100 80GB HBM3', date='d', command='python benchmarks/infer_speed.py')
    dev = dict(copy_bw=2e12, bf16_flops=5e14, nominal_bw=4.8e12, cusparselt=False, triton=None)
    rows = [dict(tokens=n, method='dense', floor_ms=f, graphed_ms=f, eager_ms=f, weight_bytes=1e6, shape='q', rel_err_fp32=0,
                 rel_err_vs_dense=0, max_ulps=0) for n, f in ((1, 1.0), (2048, 3.0))]
    runs = [dict(env=env, parts=dict(device=dev), errors=dict(model='skipped'), part_seconds=dict(device=1.0)),
            # an older run without `floor_basis` and without a device part: its floors used 4.8 TB/s and 700 TFLOP/s
            dict(env=env, parts=dict(matmul=dict(block=rows, rows=rows)), errors={}, part_seconds=dict(matmul=2.0))]
    for i, r in enumerate(runs): (tmp_path/f'{i}.json').write_text(json.dumps(r))
    run = lambda *a: subprocess.run([sys.executable, str(root/'benchmarks/infer_speed.py'), '--merge', *a], capture_output=True, text=True,
                                    timeout=300, env=os.environ | dict(PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"))
    r = run(str(tmp_path/'0.json'), str(tmp_path/'1.json'), '--out', str(tmp_path/'m'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'m/infer_speed.json').read_text())
    assert sorted(m['parts']) == ['device', 'matmul'] and m['errors'] == dict(model='skipped')
    assert m['parts']['device']['nominal_bw'] == 3.35e12   # the H100's data sheet, not the H200's
    b = m['parts']['matmul']['block']
    assert abs(b[0]['floor_ms'] - 1.0 * 4.8e12 / 2e12) < 1e-9 and abs(b[1]['floor_ms'] - 3.0 * 7e14 / 5e14) < 1e-9
    assert [x['wall_s'] for x in m['env']['merged_from']] == [1.0, 2.0]
    r = run(str(tmp_path/'0.json'), str(tmp_path/'1.json'), '--omit', 'matmul:made wrong', '--out', str(tmp_path/'o'))
    o = json.loads((tmp_path/'o/infer_speed.json').read_text())   # an omitted part is not published, only its reason
    assert r.returncode == 0 and sorted(o['parts']) == ['device'] and o['errors']['matmul'] == 'omitted: made wrong'
    assert 'One block' not in (tmp_path/'o/infer_speed.md').read_text()
    (tmp_path/'2.json').write_text(json.dumps(runs[1] | dict(env=env | dict(commit='e' * 40))))
    r = run(str(tmp_path/'0.json'), str(tmp_path/'2.json'), '--out', str(tmp_path/'n'))
    assert r.returncode != 0 and 'differ in commit or GPU' in r.stderr and not (tmp_path/'n').exists()
