"""What 2:4 (and unstructured) sparsity buys at inference on one GPU, measured without host overhead.

    python benchmarks/infer_speed.py --commit <sha> --out $OUT            # ~6 min on one H200, no network
    python benchmarks/infer_speed.py --commit <sha> --out $OUT --quick    # ~1 min smoke test (2 blocks, few shapes)
    python benchmarks/infer_speed.py --merge A.json B.json --out DIR       # runs of one commit on one GPU, combined

Weights are random bf16 in Llama-3.1-8B shapes (speed does not depend on the values; accuracy checks say so where
it does). Every number is the median of CUDA-event-timed replays; "graphed" replays a CUDA graph (no host cost),
"eager" issues the same calls from Python back to back (what the host costs). Parts, each recording its error and
letting the rest go on, results rewritten after every part:

1. device: copy bandwidth (a copy reads and writes: both counted), read bandwidth (a reduction that only reads) and
   dense bf16 matmul rate, measured; decode floors use the higher bandwidth, prefill floors the rate (nominal: H200
   4.8 TB/s, H100 SXM 3.35 TB/s). Runs before 12/2026 measured the copy alone, which cuBLAS's reads beat by ~20%.
2. matmul: one block's seven matmuls at 1, 16, 64, 2,048, 8,192 tokens: dense cuBLAS, cuSPARSELt (default and
   searched algorithm), the Triton 2:4 kernels, bitmap 50%/70% unstructured kernels, CSR 50%; per shape and per
   block, graphed and eager, with bytes/bandwidth (decode) and FLOPs/rate (prefill) floors and errors vs float32.
3. model: whole-model prefill (1/4/8 × 2,048) and decode (batch 1 and 16, context 512, static KV cache), dense
   and 2:4 (cuSPARSELt for prefill, Triton for decode), graphed and eager, with floors, weight bytes and a
   profiler split of GPU time by kernel kind (the reconciliation of whole-model vs per-matmul speed-ups).
4. drift: per-block hidden-state and logit differences of the 2:4 model vs the masked dense model, against two
   controls (the dense model re-run with other GEMM shapes or reductions, and a float32 copy) to tell a bug from
   bf16 rounding amplified by 32 random blocks.
5. stories: stories260K (a trained model) 2:4 in bf16 on the GPU through the same paths, saved compressed and
   loaded back: logits and greedy tokens against the masked dense model.

`--merge` combines the JSON files of several runs of one commit on one GPU (parts a budget skipped in one run, run by
the next on the same machine): each part from the last run that has it, and every floor re-based on the merged
device part's measured bandwidth and rate (each part records the ones its floors used, `floor_basis`).
"""
import argparse, copy, gc, json, math, os, shlex, sys, tempfile, time, traceback
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument('--out', required=True, help='folder for infer_speed.json and infer_speed.md')
ap.add_argument('--commit', default=os.environ.get('WANDA_NB_COMMIT', 'unknown'), help='the commit measured (the GPU copy has no .git)')
ap.add_argument('--quick', action='store_true', help='smoke test: fewer shapes, tokens, blocks and autotune configs')
ap.add_argument('--budget-s', type=float, default=400, help='stop starting new parts after this many seconds')
ap.add_argument('--n-layers', type=int, default=None, help='decoder blocks of the 8B-shaped model (default 32; quick 2)')
ap.add_argument('--parts', nargs='*', default=['device', 'matmul', 'model', 'stories'], help='which parts to run')
ap.add_argument('--merge', nargs='+', metavar='JSON', help='combine these runs (one commit, one GPU) into --out; runs nothing')
ap.add_argument('--omit', nargs='*', default=[], metavar='PART:REASON', help='with --merge: leave these parts out, the reason recorded')
ap.add_argument('--cpu-smoke', action='store_true', help=argparse.SUPPRESS)   # tiny shapes on CPU: exercises the code paths only
A = ap.parse_args()
if A.quick or A.cpu_smoke: os.environ['WANDA_NB_QUICK_TUNE'] = '1'     # read when wanda_nb.infer is imported
if A.cpu_smoke: os.environ.setdefault('TRITON_INTERPRET', '1')          # before triton is imported
for k in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'TRANSFORMERS_OFFLINE'): os.environ.setdefault(k, '1')   # no network

import torch, torch.nn.functional as F
from common import env_facts, md_table, root
from wanda_nb import infer as I
from wanda_nb.models import shaped_model, LLAMA31_8B
from wanda_nb.mask import nm_mask, magnitude_score
from wanda_nb.arch import decoder_blocks, block_linears

T0, DEV = time.time(), 'cpu' if A.cpu_smoke else 'cuda'
NOMINAL = {'H200': 4.8e12, 'H100': 3.35e12}                        # HBM bandwidth from the data sheets, B/s
def nominal_bw(gpu:str): return next((v for k, v in NOMINAL.items() if k in gpu), None)   # None: a card not in the table
NOMINAL_BW = (nominal_bw(torch.cuda.get_device_name()) if DEV == 'cuda' and torch.cuda.is_available() else None) or 4.8e12
LEGACY_BASIS = dict(bw=4.8e12, rate=7e14)   # what floors used without a device part before `floor_basis` was recorded (cf139ce and earlier)
def left(): return A.budget_s - (time.time() - T0)
def log(*a): print(f'[{time.time() - T0:6.1f}s]', *a, flush=True)
def sync(): torch.cuda.synchronize() if DEV == 'cuda' else None

# ---------------------------------------------------------------- timing
class _Ev:
    "A CUDA event, or a wall clock on CPU (the smoke mode)."
    def __init__(self): self.e = torch.cuda.Event(enable_timing=True) if DEV == 'cuda' else None
    def record(self):
        if self.e is not None: self.e.record()
        else: self.t = time.perf_counter()
    def ms(self, end): return self.e.elapsed_time(end.e) if self.e is not None else (end.t - self.t) * 1e3

def _median_ms(run, reps):
    ts = []
    for _ in range(reps):
        a, b = _Ev(), _Ev(); sync(); a.record(); run(); b.record(); sync(); ts.append(a.ms(b))
    return sorted(ts)[len(ts) // 2]

def eager_ms(calls, reps=3):
    "Median ms per call of the no-argument `calls`, issued back to back from Python."
    if A.cpu_smoke: calls, reps = calls[:1], 1
    for c in calls: c()
    return _median_ms(lambda: [c() for c in calls], reps) / len(calls)

def graph_ms(calls, reps=5):
    "Median ms per call of `calls` replayed from one CUDA graph (on CPU: eager)."
    if DEV != 'cuda': return eager_ms(calls[:1], 1)
    def body():
        for c in calls: c()                                            # outputs dropped: the pool reuses them
    g, _ = I.cuda_graph(body, warmup=1)
    g.replay(); sync()
    ms = _median_ms(g.replay, reps) / len(calls)
    del g; return ms

def graph_step(fn, warmup=2):
    "(replay, output) of `fn()` captured once (on CPU: the function itself)."
    if DEV != 'cuda': out = fn(); return (lambda: out.copy_(fn())), out
    g, out = I.cuda_graph(fn, warmup=warmup)
    return g.replay, out

def rel(a, b): return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()

# ---------------------------------------------------------------- results
RES = dict(env=None, parts={}, errors={}, floor_basis={})
def save():
    out = Path(A.out); out.mkdir(parents=True, exist_ok=True)
    (out/'infer_speed.json').write_text(json.dumps(RES, indent=1, default=str))
    (out/'infer_speed.md').write_text(report())

def part(name, need_s, fn):
    "Run one part if the budget allows; record its result or its error; rewrite the results."
    if left() < need_s:
        RES['errors'][name] = f'skipped: {left():.0f} s left of the budget, part needs ~{need_s:.0f} s'; log(name, 'skipped'); save(); return
    log('part', name); t = time.time()
    try: RES['parts'][name] = fn(); RES['floor_basis'][name] = dict(bw=bw(), rate=rate())
    except Exception as e:
        RES['errors'][name] = f'{type(e).__name__}: {e}\n' + ''.join(traceback.format_exc().splitlines(True)[-12:])
        log(name, 'FAILED:', type(e).__name__, str(e)[:300])
    RES.setdefault('part_seconds', {})[name] = round(time.time() - t, 1)
    gc.collect(); torch.cuda.empty_cache() if DEV == 'cuda' else None
    save()

def guard(rec, key, fn):
    "rec[key] = fn(), or the error's name and message (one failing measurement does not stop its part)."
    try: rec[key] = fn()
    except Exception as e: rec[key] = None; rec.setdefault('errors', {})[key] = f'{type(e).__name__}: {e}'[:300]
    return rec[key]

# ---------------------------------------------------------------- part 1: device
def device():
    n = (1 << 28) if DEV == 'cuda' else (1 << 20)                     # 512 MiB of bf16
    a = torch.empty(n, dtype=torch.bfloat16, device=DEV); b = torch.empty_like(a)
    copy_ms = graph_ms([lambda: b.copy_(a)] * 4)
    read_ms = graph_ms([lambda: torch.sum(a)] * 4)                     # reads a once, writes one number
    m = 8192 if DEV == 'cuda' else 256
    x, y = torch.randn(m, m, device=DEV, dtype=torch.bfloat16), torch.randn(m, m, device=DEV, dtype=torch.bfloat16)
    mm_ms = graph_ms([lambda: x @ y] * 4)
    r = dict(copy_bw=2 * 2 * n / (copy_ms / 1e3), read_bw=2 * n / (read_ms / 1e3), bf16_flops=2 * m**3 / (mm_ms / 1e3), nominal_bw=NOMINAL_BW,
             cusparselt=I.cslt_ok(), triton=getattr(I.triton, '__version__', None))
    if DEV == 'cuda': r['sms'], r['l2_bytes'] = (torch.cuda.get_device_properties(0).multi_processor_count,
                                                 getattr(torch.cuda.get_device_properties(0), 'L2_cache_size', None))
    log(f"copy {r['copy_bw'] / 1e12:.2f} TB/s, read {r['read_bw'] / 1e12:.2f} TB/s, bf16 {r['bf16_flops'] / 1e12:.0f} TFLOP/s")
    return r

def bw():
    "Decode floors' bandwidth: the higher of the measured copy and read bandwidths (copy alone in runs before read_bw)."
    d = RES['parts'].get('device', {})
    return max(d.get('copy_bw') or 0, d.get('read_bw') or 0) or NOMINAL_BW
def rate(): return RES['parts'].get('device', {}).get('bf16_flops') or 7e14

# ---------------------------------------------------------------- part 2: matmuls
def shapes():
    c = LLAMA31_8B if not A.cpu_smoke else dict(hidden_size=128, intermediate_size=320, num_key_value_heads=2, num_attention_heads=4)
    h, i, kv = c['hidden_size'], c['intermediate_size'], c['num_key_value_heads'] * (c['hidden_size'] // c['num_attention_heads'])
    s = [('q', h, h), ('k', kv, h), ('v', kv, h), ('o', h, h), ('gate', i, h), ('up', i, h), ('down', h, i)]
    return s

def masked_24(w): return w.masked_fill(nm_mask(magnitude_score(w), 2, 4), 0)

def formats(name, d_out, d_in, seed):
    "Every format of one random weight: dense 2:4-masked, compressed 2:4, cuSPARSELt, bitmap 50/70%, CSR 50%."
    g = torch.Generator(device=DEV).manual_seed(seed)
    w = masked_24(torch.randn(d_out, d_in, device=DEV, dtype=torch.bfloat16, generator=g) * 0.02)
    f = dict(name=name, d_out=d_out, d_in=d_in, dense=w)
    f['sp24'] = I.compress_24(w)
    if I.cslt_ok(): guard(f, 'cslt', lambda: torch._cslt_compress(w))
    for s in (50, 70):
        u = torch.randn(d_out, d_in, device=DEV, dtype=torch.bfloat16, generator=g) * 0.02
        u[torch.rand(d_out, d_in, device=DEV, generator=g) < s / 100] = 0
        f[f'u{s}'] = u
        f[f'bm{s}'] = I.compress_bitmap(u)
    guard(f, 'csr50', lambda: f['u50'].to_sparse_csr())
    return f

def nbytes(f, method):
    "Weight bytes a method reads."
    if method == 'dense': return f['dense'].numel() * 2
    if method.startswith(('triton24', 'cslt')): return sum(t.numel() * t.element_size() for t in f['sp24'])
    if method.startswith('bm'): return I.bitmap_bytes(f[method[:4]])
    if method == 'csr50': c = f['csr50']; return sum(t.numel() * t.element_size() for t in (c.values(), c.col_indices(), c.crow_indices()))

def op(f, method, x):
    "A no-argument call computing x Wᵀ with `method`, or None where it does not apply."
    n, d_in = x.shape
    if method == 'dense': return lambda: F.linear(x, f['dense'])
    if method == 'cslt0' and f.get('cslt') is not None: return lambda: I.cslt_linear(f['cslt'], x, search=False)
    if method == 'cslt' and f.get('cslt') is not None: return lambda: I.cslt_linear(f['cslt'], x, search=True)
    if n <= 64 and I.kernel_ok(x):
        if method == 'triton24': return lambda: I.sp24_matmul(x, *f['sp24'], d_in)
        if method == 'triton24_dot' and n == 1: return lambda: I.sp24_matmul(x, *f['sp24'], d_in, kernel='dot')
        if method in ('bm50', 'bm70'): return lambda: I.bitmap_matmul(x, f[method])
    if method == 'csr50' and n <= 16 and f.get('csr50') is not None: return lambda: torch.sparse.mm(f['csr50'], x.t())
    return None

def reference(f, method, x):
    "The float32 product the method approximates."
    w = f['u50'] if method in ('bm50', 'csr50') else f['u70'] if method == 'bm70' else f['dense']
    return x.float() @ w.float().T

METHODS = ['dense', 'cslt0', 'cslt', 'triton24', 'triton24_dot', 'bm50', 'bm70', 'csr50']

def floor_ms(f_list, method, n):
    "Decode (n <= 64): bytes / measured bandwidth (`bw`); prefill: FLOPs / measured rate (2:4: twice the rate)."
    if n <= 64:
        b = sum(nbytes(f, method) + 2 * n * (f['d_in'] + f['d_out']) for f in f_list)
        return 1e3 * b / bw()
    fl = sum(2 * n * f['d_in'] * f['d_out'] for f in f_list)
    return 1e3 * fl / (rate() * (2 if method.startswith(('cslt', 'triton24')) else 1))

def matmul():
    toks = [1, 16, 2048] if A.quick else [1, 16, 64, 2048, 8192]
    if A.cpu_smoke: toks = [1, 80]
    t_start = time.time()
    fs = [formats(*s, seed=i) for i, s in enumerate(shapes())]
    rows, blocks, l2 = [], [], (RES['parts'].get('device') or {}).get('l2_bytes')
    for n in toks:
        for f in fs:
            x = torch.randn(n, f['d_in'], device=DEV, dtype=torch.bfloat16)
            dense_y = F.linear(x, f['dense'])
            for m in METHODS:
                c = op(f, m, x)
                if c is None: continue
                r = dict(shape=f['name'], d_out=f['d_out'], d_in=f['d_in'], tokens=n, method=m, weight_bytes=nbytes(f, m))
                if l2: r['fits_l2'] = r['weight_bytes'] < l2             # replayed alone, its weights can stay in L2
                y = guard(r, 'y', c)
                if y is None: rows.append(r); continue
                y = y.t() if m == 'csr50' else y
                ref = reference(f, m, x)
                r.pop('y'); r['rel_err_fp32'] = rel(y, ref)
                if m not in ('bm50', 'bm70', 'csr50'): r['rel_err_vs_dense'] = rel(y, dense_y)
                floor = 1e-2 * ref.pow(2).mean().sqrt()                # near-zero outputs: 1% of the rms
                r['max_ulps'] = ((y.float() - ref).abs() / (2**-8 * torch.maximum(ref.abs(), floor))).max().item()
                if m != 'csr50': guard(r, 'graphed_ms', lambda: graph_ms([c] * (8 if n <= 64 else 3)))
                guard(r, 'eager_ms', lambda: eager_ms([c] * (8 if n <= 64 else 3)))
                r['floor_ms'] = floor_ms([f], m, n)
                rows.append(r)
            log(f'matmul {f["name"]} n={n}:', {r['method']: round(r.get('graphed_ms') or r.get('eager_ms') or -1, 4)
                                               for r in rows if r['shape'] == f['name'] and r['tokens'] == n})
        x = {f['name']: torch.randn(n, f['d_in'], device=DEV, dtype=torch.bfloat16) for f in fs}
        for m in METHODS:                                              # the seven as one graph, as in a block
            cs = [op(f, m, x[f['name']]) for f in fs]
            if any(c is None for c in cs): continue
            b = dict(tokens=n, method=m, weight_bytes=sum(nbytes(f, m) for f in fs), floor_ms=floor_ms(fs, m, n))
            if m != 'csr50': guard(b, 'graphed_ms', lambda: graph_ms(cs * 4) * 7)
            guard(b, 'eager_ms', lambda: eager_ms(cs * 2) * 7)
            blocks.append(b)
        log(f'block n={n}:', {b['method']: round(b.get('graphed_ms') or -1, 4) for b in blocks if b['tokens'] == n})
        if time.time() - t_start > (40 if A.quick else 160) and not A.cpu_smoke:
            log('matmul: stopping early to leave time for the model'); break
    del fs; return dict(rows=rows, block=blocks)

# ---------------------------------------------------------------- part 3: whole model
CTX = 512
def build_model(n_layers):
    if A.cpu_smoke:
        from wanda_nb.models import tiny_model
        m = tiny_model('llama').to(torch.bfloat16)
    else: m = shaped_model('meta-llama/Llama-3.1-8B', dtype=torch.bfloat16, device=DEV, n_layers=n_layers)
    with torch.no_grad():
        for b in decoder_blocks(m):
            for lin in block_linears(b).values(): lin.weight.data = masked_24(lin.weight.data)
    return m.eval()

def model_floors(model, kind, b, t):
    "Decode: bytes read per step / bandwidth; prefill: FLOPs / rate (2:4 linears at twice the rate)."
    cfg, L = model.config, model.config.num_hidden_layers
    kv_dim = cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    lin = sum(m.weight.numel() for bl in decoder_blocks(model) for m in block_linears(bl).values()) \
          or sum(m.d_out * m.d_in for m in I.sparse_linears(model).values())
    head = cfg.vocab_size * cfg.hidden_size
    if t == 1:
        wbytes = lin * 2 * (9 / 16 if kind == '2:4' else 1) + head * 2
        kv = b * CTX * L * 2 * kv_dim * 2
        return 1e3 * (wbytes + kv) / bw()
    attn = L * 2 * b * t * t * cfg.hidden_size                         # QKᵀ and AV, causal half
    return 1e3 * (2 * b * t * lin / (2 if kind == '2:4' else 1) + attn + 2 * b * head) / rate()

def prefill_rows(model, kind, shapes_):
    rows = []
    V = model.config.vocab_size
    for b, t in shapes_:
        ids = torch.randint(0, V, (b, t), device=DEV)
        fwd = lambda: model(ids, use_cache=False, logits_to_keep=1).logits
        r = dict(model=kind, phase='prefill', batch=f'{b}x{t}', tokens=b * t, floor_ms=model_floors(model, kind, b, t))
        with torch.no_grad():
            guard(r, 'eager_ms', lambda: eager_ms([fwd], reps=3))
            def gr():
                replay, _ = graph_step(fwd, warmup=1)
                return _median_ms(replay, 3)
            guard(r, 'graphed_ms', gr)
        rows.append(r); log('prefill', kind, r['batch'], {k: r.get(k) for k in ('eager_ms', 'graphed_ms', 'floor_ms')})
        gc.collect(); torch.cuda.empty_cache() if DEV == 'cuda' else None
    return rows

def decode_rows(model, kind, batches, steps):
    from transformers import StaticCache
    rows = []
    for b in batches:
        r = dict(model=kind, phase=f'decode (ctx {CTX})', batch=b, tokens=b, floor_ms=model_floors(model, kind, b, 1))
        with torch.no_grad():
            cache = StaticCache(config=model.config, max_cache_len=CTX + 4 * steps + 8)
            ids = torch.randint(0, model.config.vocab_size, (b, CTX), device=DEV)
            tok = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1:].argmax(-1)
            step = lambda t: model(t, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)
            def eager():
                t = tok
                def run():
                    nonlocal t
                    for _ in range(steps // 2): t = step(t)
                run()
                return _median_ms(run, 1) / (steps // 2)
            guard(r, 'eager_ms', eager)
            static = tok.clone()
            def graphed():
                replay, out = graph_step(lambda: step(static), warmup=2)
                def run():
                    for _ in range(steps): static.copy_(out); replay()
                return _median_ms(run, 2) / steps
            guard(r, 'graphed_ms', graphed)
        rows.append(r); log('decode', kind, b, {k: r.get(k) for k in ('eager_ms', 'graphed_ms', 'floor_ms')})
        del cache; gc.collect(); torch.cuda.empty_cache() if DEV == 'cuda' else None
    return rows

def kernel_kind(name):
    "Classify a GPU kernel by its name (the JSON keeps the top names of each kind, to check this)."
    n = name.lower()
    if 'sp24' in n or '_bm_' in n: return 'triton 2:4'
    if 'sparse' in n or 'spmma' in n or 'cusparselt' in n: return 'cusparselt'
    if any(s in n for s in ('flash', 'fmha', 'attention', 'attn', 'sdpa')): return 'attention'
    if any(s in n for s in ('gemm', 'xmma', 'nvjet', 'cutlass', 'matmul', 'sm90_', 'cublas')): return 'dense gemm'
    return 'other'

def profile_split(model, b, t):
    "GPU time of one (eager) prefill by kernel kind, from the profiler's kernel records: linears vs the rest."
    from torch.profiler import profile, ProfilerActivity
    from torch.autograd import DeviceType
    ids = torch.randint(0, model.config.vocab_size, (b, t), device=DEV)
    fwd = lambda: model(ids, use_cache=False, logits_to_keep=1).logits
    with torch.no_grad():
        fwd(); sync()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p: fwd(); sync()
    kinds, top = {}, {}
    for e in p.events():
        if e.device_type != DeviceType.CUDA: continue
        ms = e.time_range.elapsed_us() / 1e3
        k = kernel_kind(e.name)
        kinds[k] = kinds.get(k, 0) + ms
        top.setdefault(k, {}); top[k][e.name[:100]] = top[k].get(e.name[:100], 0) + ms
    return dict(batch=f'{b}x{t}', ms_by_kind={k: round(v, 3) for k, v in kinds.items()},
                top_kernels={k: sorted(((round(v, 3), n) for n, v in d.items()), reverse=True)[:5] for k, d in top.items()})

def drift_probe(model, ids):
    "Hidden states after each block (float32, on the GPU) and logits."
    with torch.no_grad():
        o = model(ids, use_cache=False, output_hidden_states=True)
    return [h.float() for h in o.hidden_states], o.logits.float()

def compare(a, b):
    (ha, la), (hb, lb) = a, b
    return dict(per_block=[round(rel(x, y), 6) for x, y in zip(ha, hb)], logits=rel(la, lb),
                argmax_agree=(la.argmax(-1) == lb.argmax(-1)).float().mean().item())

def whole_model():
    L = A.n_layers or (2 if A.quick or A.cpu_smoke else 32)
    pre = [(1, 512)] if A.quick or A.cpu_smoke else [(1, 2048), (4, 2048), (8, 2048)]
    big = pre[-1]
    steps = 8 if A.quick or A.cpu_smoke else 32
    r = dict(n_layers=L, ctx=CTX, prefill_shapes=pre, decode_steps=steps)
    model = build_model(L)
    log('model built:', L, 'blocks')
    rows = prefill_rows(model, 'dense', pre) + decode_rows(model, 'dense', [1, 16], steps)
    guard(r, 'profile_dense', lambda: profile_split(model, *big))
    # drift: everything the masked dense model gives, before its weights are replaced
    g = torch.Generator(device=DEV).manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (2, 256 if not A.cpu_smoke else 32), device=DEV, generator=g)
    d = {}
    dense = drift_probe(model, ids)
    guard(d, 'dense_batch1_vs_batch2', lambda: compare(_cat([drift_probe(model, ids[i:i + 1]) for i in range(2)]), dense))
    def no_reduced():
        old = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = not old
        try: return compare(drift_probe(model, ids), dense) | dict(allow_bf16_reduced_precision_reduction=not old)
        finally: torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = old
    guard(d, 'dense_other_reduction_vs_dense', no_reduced)
    fp32 = None
    free = torch.cuda.mem_get_info()[0] if DEV == 'cuda' else 1 << 40
    need = 3 * sum(p.numel() * 2 for p in model.parameters()) * 1.1     # a bf16 copy, then its float32 version
    if free > need:
        def f32():
            nonlocal fp32
            m32 = copy.deepcopy(model).float(); fp32 = drift_probe(m32, ids); del m32
            return compare(dense, fp32)
        guard(d, 'dense_vs_fp32', f32)
    else: d['dense_vs_fp32'] = f'skipped: {free / 2**30:.0f} GiB free, {need / 2**30:.0f} needed'
    short = ids[:1, :64]
    dense_short = drift_probe(model, short)
    # the sparse model
    t = time.time()
    I.sparsify_model(model)
    r['sparsify_s'] = round(time.time() - t, 1)
    r['weight_bytes'] = I.weight_bytes(model)
    r['cslt_values_shared'] = sum(m.values.untyped_storage().data_ptr() == m.packed.untyped_storage().data_ptr()
                                  for m in I.sparse_linears(model).values() if m.packed is not None)
    gc.collect(); torch.cuda.empty_cache() if DEV == 'cuda' else None
    sp = drift_probe(model, ids)
    d['sparse_vs_dense'] = compare(sp, dense)
    if fp32 is not None: d['sparse_vs_fp32'] = compare(sp, fp32)
    def alg0():
        for m in I.sparse_linears(model).values(): m.search = False
        try: return compare(drift_probe(model, ids), dense)
        finally:
            for m in I.sparse_linears(model).values(): m.search = True
    guard(d, 'sparse_cslt_default_alg_vs_dense', alg0)
    guard(d, 'sparse_triton_64_tokens_vs_dense', lambda: compare(drift_probe(model, short), dense_short))
    r['drift'] = d
    log('drift:', {k: (v['logits'] if isinstance(v, dict) and 'logits' in v else v) for k, v in d.items()})
    del dense, sp, fp32; gc.collect(); torch.cuda.empty_cache() if DEV == 'cuda' else None
    rows += prefill_rows(model, '2:4', pre) + decode_rows(model, '2:4', [1, 16], steps)
    guard(r, 'profile_2:4', lambda: profile_split(model, *big))
    r['rows'] = rows
    del model; return r

def _cat(probes):
    "Stack per-sequence probes back into one batch."
    return [torch.cat(h, 0) for h in zip(*[p[0] for p in probes])], torch.cat([p[1] for p in probes], 0)

# ---------------------------------------------------------------- part 5: stories260K
def stories():
    from wanda_nb.models import load_model
    from wanda_nb.prune import prune_model
    m, tok = load_model('stories260K')
    prune_model(m, method='magnitude', structure='2:4', progress=False)
    ref = copy.deepcopy(m).to(DEV, torch.bfloat16)
    sp = I.sparsify_model(m.to(torch.bfloat16), cslt=False)
    with tempfile.TemporaryDirectory() as d:
        I.save_sparse(sp, d); size = (Path(d)/'model.safetensors').stat().st_size
        back = I.load_sparse(d, device=DEV, cslt=False)
    r = dict(file_bytes=size, prepare=I.prepare(back), weight_bytes=I.weight_bytes(back))
    ids = torch.tensor([tok('Once upon a time, there was a little girl who')['input_ids']] * 4, device=DEV)
    r['shape_short'], r['shape_long'] = list(ids.shape), [4, 8 * ids.shape[1]]
    with torch.no_grad():
        r['prefill_logits_rel'] = rel(back(ids).logits, ref(ids).logits)            # <= 64 tokens: the Triton kernels
        long = ids.repeat(1, 8)                                                      # > 64 tokens: cuSPARSELt or dense
        r['long_prefill_logits_rel'] = rel(back(long).logits, ref(long).logits)
    # Free-running greedy text diverges for good at the first near-tie, so the control is the same masked dense model in
    # float32: sparse-vs-dense (both bf16) is judged against dense-bf16-vs-float32, free-running and teacher-forced
    # (every position scored on the dense model's own continuation, so one flip does not cascade).
    f32 = copy.deepcopy(ref).float()
    a, b, c = (I.generate_greedy(x, ids, 48) for x in (back, ref, f32))
    def agree(u, v): return dict(tokens_equal=(u == v).float().mean().item(),
                                 first_divergence=int((u != v).any(0).float().argmax()) if (u != v).any() else None)
    with torch.no_grad():
        seq = torch.cat([ids, b], 1); lo = ids.shape[1] - 1
        top = {k: x(seq).logits[:, lo:-1].float().argmax(-1) for k, x in (('sparse', back), ('dense', ref), ('fp32', f32))}
    r['greedy_sparse_vs_dense'] = agree(a, b) | dict(teacher_forced_argmax_equal=(top['sparse'] == top['dense']).float().mean().item())
    r['greedy_dense_vs_fp32'] = agree(b, c) | dict(teacher_forced_argmax_equal=(top['dense'] == top['fp32']).float().mean().item())
    r['text_sparse'], r['text_dense'], r['text_fp32'] = (tok.decode(x[0].tolist()) for x in (a, b, c))
    return r

# ---------------------------------------------------------------- report
def report():
    e, P = RES['env'] or {}, RES['parts']
    s = [f"# What 2:4 buys at inference, measured without host overhead\n\n",
         f"{e.get('date')} · {e.get('gpu')} · torch {e.get('torch')} (CUDA {e.get('cuda')}) · triton {P.get('device', {}).get('triton')} · "
         f"transformers {e.get('transformers')} · commit {e.get('commit')} · wall {e.get('wall_s', time.time() - T0):.0f} s\n\n",
         f"Command: `{e.get('command')}`\n\n"]
    for r in e.get('merged_from', []):
        s.append(f"- run of {r['date']}, {r['wall_s']:.0f} s, parts {', '.join(r['parts'])}: `{r['command']}`\n")
    if e.get('merged_from'): s.append('\n')
    if 'device' in P:
        dv = P['device']
        rd = f", read bandwidth {dv['read_bw'] / 1e12:.2f} TB/s" if dv.get('read_bw') else ''
        s.append(f"Measured: copy bandwidth {dv['copy_bw'] / 1e12:.2f} TB/s{rd} (nominal {(dv.get('nominal_bw') or math.nan) / 1e12:.2f}), dense bf16 matmul {dv['bf16_flops'] / 1e12:.0f} TFLOP/s, "
                 f"cuSPARSELt available: {dv['cusparselt']}. Floors: decode = bytes read (weights in their format + inputs + outputs) / measured "
                 f"{'bandwidth (the higher of copy and read)' if rd else 'copy bandwidth'}; prefill = FLOPs / measured dense rate (2:4: twice that rate, the sparse tensor cores' nominal gain).\n\n")
    if 'matmul' in P:
        mm = P['matmul']
        s.append("## One block's seven matmuls (Llama-3.1-8B shapes), per block\n\n")
        s.append("`graphed` = replayed from a CUDA graph, `eager` = the same calls from Python; ms per block of seven. `dense` cuBLAS; "
                 "`cslt0`/`cslt` cuSPARSELt default/searched algorithm; `triton24` the 2:4 kernel (one token: CUDA cores; more: tensor cores); "
                 "`triton24_dot` its tensor-core kernel at one token; `bm50`/`bm70` bitmap kernels at 50/70% unstructured; `csr50` torch.sparse CSR (eager).\n\n")
        rows = []
        for b in mm['block']:
            d = next((x for x in mm['block'] if x['tokens'] == b['tokens'] and x['method'] == 'dense'), {})
            rows.append(b | dict(speedup_vs_dense_graphed=(d.get('graphed_ms') or math.nan) / (b.get('graphed_ms') or math.nan),
                                 x_floor=(b.get('graphed_ms') or math.nan) / b['floor_ms'], MB=b['weight_bytes'] / 1e6))
        s.append(md_table(rows, ['tokens', 'method', 'MB', 'graphed_ms', 'eager_ms', 'floor_ms', 'x_floor', 'speedup_vs_dense_graphed']))
        s.append("\nTargets of the 2:4 decode kernel: >= 1.3x faster than graphed dense at 1 and 16 tokens, within 1.3x of its floor:\n\n")
        for n in (1, 16):
            t = next((b for b in rows if b['tokens'] == n and b['method'] == 'triton24'), None)
            if t: s.append(f"- {n} token(s): {t['speedup_vs_dense_graphed']:.2f}x vs dense ({'met' if t['speedup_vs_dense_graphed'] >= 1.3 else 'NOT met'}), "
                           f"{t['x_floor']:.2f}x its floor ({'met' if t['x_floor'] <= 1.3 else 'NOT met'})\n")
        l2c = ['fits_l2'] if any('fits_l2' in r for r in mm['rows']) else []
        s.append("\n## Per matmul\n\n" + md_table(mm['rows'], ['shape', 'tokens', 'method', 'graphed_ms', 'eager_ms', 'floor_ms'] + l2c +
                                                 ['rel_err_fp32', 'rel_err_vs_dense', 'max_ulps']))
        if l2c: s.append(f"\n`fits_l2`: the weights in their format are smaller than the GPU's L2 cache "
                         f"({(RES['parts'].get('device') or {}).get('l2_bytes', 0) / 2**20:.0f} MiB): a matmul replayed alone may read them "
                         "from L2, not HBM, so its decode time is no HBM measurement; the per-block rows are.\n")
        s.append("\n`rel_err_fp32`: ‖y − x·Wᵀ(float32)‖/‖x·Wᵀ‖; `max_ulps`: the largest |error| in units of 2⁻⁸·|y| (half a bf16 ulp or less "
                 "is exact rounding). Unstructured methods are compared with their own (unstructured) weight.\n")
        fast = [r for r in mm['rows'] if r.get('graphed_ms') and r['graphed_ms'] < r['floor_ms']]
        if fast:   # a floor below a measured time is no floor: say by how much the measured basis undershoots
            basis = RES.get('floor_basis', {}).get('matmul') or dict(bw=bw(), rate=rate())
            dec = [r for r in fast if r['tokens'] <= 64]; pre = [r for r in fast if r['tokens'] > 64]
            s.append(f"\n{len(fast)} of {len(mm['rows'])} per-matmul rows ran faster than their floor, so those floors are not bounds: ")
            ach = lambda r: r['floor_ms'] / r['graphed_ms'] * basis['bw']          # bytes per second the row achieved
            nom = (RES['parts'].get('device') or {}).get('nominal_bw') or math.inf
            names = lambda rs: ', '.join(sorted({f"{r['shape']} {r['method']}" for r in rs}))
            hbm = [r for r in dec if ach(r) <= nom]; l2 = [r for r in dec if ach(r) > nom]
            if hbm: s.append(f"at decode sizes {names(hbm)} read up to {max(map(ach, hbm)) / 1e12:.3g} TB/s, more than the "
                             f"{basis['bw'] / 1e12:.3g} TB/s the floors assume (a kernel that only reads outruns a copy); ")
            if l2: s.append(f"{names(l2)} reached {max(map(ach, l2)) / 1e12:.3g} TB/s, above the {nom / 1e12:.3g} TB/s of the GPU's "
                            "data sheet: replayed alone, a matmul finds its weights (here up to "
                            f"{max(r.get('weight_bytes', 0) for r in l2) / 1e6:.0f} MB) still in the L2 cache, so per-matmul "
                            "decode times of small matrices do not measure HBM (the per-block rows, seven matmuls of more bytes than "
                            "L2 holds, do); ")
            if pre: s.append(f"at prefill sizes ({names(pre)}) up to "
                             f"{max(r['floor_ms'] / r['graphed_ms'] for r in pre) * basis['rate'] / 1e12:.3g} TFLOP/s against "
                             f"{basis['rate'] / 1e12:.3g}; ")
            s.append("every `x_floor` above is relative to that assumed basis; measured against the rate a row reached instead, a "
                     "kernel's distance to its floor grows by that ratio.\n")
    if 'model' in P:
        M = P['model']
        s.append(f"\n## Whole model ({M['n_layers']} blocks of the 8B shape, every decoder linear 2:4; dense = the masked model)\n\n")
        rows = []
        for r in M['rows']:
            d = next((x for x in M['rows'] if x['model'] == 'dense' and x['phase'] == r['phase'] and x['batch'] == r['batch']), {})
            rows.append(r | dict(x_floor=(r.get('graphed_ms') or math.nan) / r['floor_ms'],
                                 speedup_graphed=(d.get('graphed_ms') or math.nan) / (r.get('graphed_ms') or math.nan),
                                 speedup_eager=(d.get('eager_ms') or math.nan) / (r.get('eager_ms') or math.nan)))
        s.append(md_table(rows, ['model', 'phase', 'batch', 'graphed_ms', 'eager_ms', 'floor_ms', 'x_floor', 'speedup_graphed', 'speedup_eager']))
        wb = M.get('weight_bytes', {})
        s.append(f"\nWeight bytes of the 2:4 model: {json.dumps({k: round(v / 2**20, 1) for k, v in wb.items()})} MiB "
                 f"(dense linears they replace: {wb.get('dense_linears', 0) / 2**20:.1f} MiB); cuSPARSELt copies sharing our values: "
                 f"{M.get('cslt_values_shared')}.\n")
        for k in ('profile_dense', 'profile_2:4'):
            if M.get(k): s.append(f"\nGPU time of one eager {M[k]['batch']} prefill by kernel kind (profiler kernel records) ({k[8:]}): {M[k]['ms_by_kind']} ms\n")
        if M.get('drift'):
            s.append("\n### Drift: relative difference of hidden states after each block, and of the logits (2 × 256 tokens)\n\n"
                     "Controls: the dense model run one sequence at a time (other GEMM shapes), with the other cuBLAS bf16 reduction "
                     "setting, and in float32. 2:4 at 512 tokens runs cuSPARSELt (searched, and default algorithm); at 64 tokens the "
                     "Triton kernel.\n\n")
            for k, v in M['drift'].items():
                if isinstance(v, dict) and 'per_block' in v:
                    pb = v['per_block']
                    s.append(f"- {k}: logits {v['logits']:.2e}, argmax agreement {v['argmax_agree']:.3f}; blocks 1, 2, 4, 8, 16, last: "
                             f"{', '.join(f'{pb[i]:.1e}' for i in (1, 2, 4, 8, 16, len(pb) - 1) if i < len(pb))}\n")
                else: s.append(f"- {k}: {v}\n")
    if 'model' in P and 'matmul' in P:
        s.append(reconcile())
    if 'stories' in P:
        st = P['stories']   # runs before the float32 control kept only the free-running comparison, as flat keys
        g = st.get('greedy_sparse_vs_dense') or dict(tokens_equal=st['greedy_tokens_equal'], first_divergence=st['first_divergence'])
        s.append(f"\n## stories260K (trained), 2:4 magnitude, bf16 on the GPU, saved and loaded compressed\n\n"
                 f"File {st['file_bytes']} bytes; logits relative difference vs masked dense: {st['prefill_logits_rel']:.2e} at {st.get('shape_short')} tokens "
                 f"(Triton), {st.get('long_prefill_logits_rel', math.nan):.2e} at {st.get('shape_long')} (cuSPARSELt where it accepts the shapes, else dense); "
                 f"greedy tokens equal (4 × 48): {g['tokens_equal']:.3f} (first divergence at {g['first_divergence']}); "
                 f"prepare: {st['prepare']}.\n")
        if 'greedy_dense_vs_fp32' in st:
            h = st['greedy_dense_vs_fp32']
            s.append(f"\nAgainst the control (the masked dense model in bf16 vs the same model in float32; prompt {st.get('shape_short')}): "
                     f"free-running tokens equal {g['tokens_equal']:.3f} (2:4 vs dense) and {h['tokens_equal']:.3f} (bf16 vs float32), "
                     f"first divergence at {g['first_divergence']} and {h['first_divergence']}; teacher-forced on the dense "
                     f"continuation, argmax equal {g['teacher_forced_argmax_equal']:.3f} and {h['teacher_forced_argmax_equal']:.3f}.\n")
    if RES['errors']:
        s.append("\n## Errors and skipped parts\n\n" + ''.join(f"- {k}: `{str(v).splitlines()[0][:300]}`\n" for k, v in RES['errors'].items()))
    return ''.join(s)

def reconcile():
    "Whole-model vs per-matmul speed-up: Amdahl with the profiled share of dense GEMM time."
    M, mm = RES['parts']['model'], RES['parts']['matmul']
    pd, ps = M.get('profile_dense') or {}, M.get('profile_2:4') or {}
    kd, ks = pd.get('ms_by_kind', {}), ps.get('ms_by_kind', {})
    if not kd or not ks: return ''
    lin_d, tot_d = kd.get('dense gemm', 0), sum(kd.values())
    lin_s = ks.get('cusparselt', 0) + ks.get('triton 2:4', 0) + ks.get('dense gemm', 0)    # (+ the dense lm_head, one token)
    f = lin_d / tot_d
    s_lin = lin_d / max(lin_s, 1e-9)
    pred = 1 / ((1 - f) + f / s_lin)
    meas = next((r for r in M['rows'] if r['model'] == '2:4' and r['batch'] == pd['batch']), {})
    dens = next((r for r in M['rows'] if r['model'] == 'dense' and r['batch'] == pd['batch']), {})
    got = (dens.get('graphed_ms') or math.nan) / (meas.get('graphed_ms') or math.nan)
    big = max(b['tokens'] for b in mm['block'])
    blk = {b['method']: b for b in mm['block'] if b['tokens'] == big}
    sp = lambda k: (blk.get('dense', {}).get(k) or math.nan) / (blk.get('cslt', {}).get(k) or math.nan)
    old, prev = root/'benchmarks/results/sparse_speed.json', ''
    if old.exists():
        o = json.loads(old.read_text())
        e2e = {r['batch']: r['speedup'] for r in o['end_to_end']['rows'] if r['phase'] == 'prefill'}
        prev = f" The earlier eager measurement (`sparse_speed.md`): {e2e.get('8x2048', math.nan):.2f}x for the whole model at 8x2048."
    return (f"\n### Reconciliation ({pd['batch']} prefill)\n\nDense GEMMs take {f:.0%} of the dense model's GPU time ({lin_d:.1f} of "
            f"{tot_d:.1f} ms); in the 2:4 model the linears take {lin_s:.1f} ms ({s_lin:.2f}x faster). Amdahl predicts "
            f"{pred:.2f}x for the model; measured graphed: {got:.2f}x. Per block of seven matmuls at {big} tokens cuSPARSELt "
            f"(searched) is {sp('graphed_ms'):.2f}x dense graphed and {sp('eager_ms'):.2f}x eager: the eager figure adds the "
            f"host's cost per call, which a model overlaps with other kernels' GPU time and a single timed call does not.{prev} "
            "(Kernels are classified by name: see `top_kernels` in the JSON.)\n")

# ---------------------------------------------------------------- merge
def rebase(part_res:dict, old:dict, new:dict) -> dict:
    "`part_res` with every floor_ms moved from bandwidth/rate `old` to `new` (decode rows: bytes/bw; prefill: FLOPs/rate)."
    def fix(r, decode):
        k = old['bw'] / new['bw'] if decode else old['rate'] / new['rate']
        return r | dict(floor_ms=r['floor_ms'] * k) if r.get('floor_ms') is not None else r
    out = dict(part_res)
    for key in ('rows', 'block'):
        if isinstance(out.get(key), list):
            out[key] = [fix(r, str(r.get('phase', '')).startswith('decode') if 'phase' in r else r.get('tokens', 0) <= 64)
                        for r in out[key]]
    return out

def merge(paths:list) -> None:
    "RES from runs of one commit on one GPU: each part from the last run that has it, floors on the merged device part."
    runs = [json.loads(Path(p).read_text()) for p in paths]
    who = {(r['env']['commit'], r['env']['gpu']) for r in runs}
    if len(who) != 1: sys.exit(f"--merge: the runs differ in commit or GPU ({sorted(who)}); merge only runs of one commit on one GPU")
    omit = dict(o.split(':', 1) for o in A.omit)
    got = {}
    for r in runs:
        for name, res in r['parts'].items():
            if name in omit: continue
            base = (r.get('floor_basis') or {}).get(name) or (dict(bw=r['parts']['device']['copy_bw'], rate=r['parts']['device']['bf16_flops'])
                                                          if 'device' in r['parts'] else LEGACY_BASIS)
            got[name] = (res, base, r)
    if 'device' not in got: sys.exit('--merge: no run has the device part, so there is no measured bandwidth to base floors on')
    gpu = runs[-1]['env']['gpu']   # the data-sheet bandwidth of this GPU (runs before the NOMINAL table wrote 4.8 TB/s on any)
    RES['parts']['device'] = got['device'][0] | dict(nominal_bw=nominal_bw(gpu))
    for name, (res, base, r) in got.items():
        if name != 'device': RES['parts'][name] = rebase(res, base, dict(bw=bw(), rate=rate())); RES['floor_basis'][name] = dict(bw=bw(), rate=rate())
        RES.setdefault('part_seconds', {})[name] = (r.get('part_seconds') or {}).get(name)
    RES['errors'] = {k: v for r in runs for k, v in r['errors'].items() if k not in got} | {k: f'omitted: {v}' for k, v in omit.items()}
    walls = [sum(v for v in (r.get('part_seconds') or {}).values() if v) for r in runs]
    RES['env'] = runs[-1]['env'] | dict(command='python benchmarks/infer_speed.py ' + shlex.join(sys.argv[1:]), wall_s=sum(walls),
        merged_from=[dict(date=r['env']['date'], command=r['env']['command'], parts=sorted(r['parts']), wall_s=w) for r, w in zip(runs, walls)])

if __name__ == '__main__' and A.merge:
    merge(A.merge); save(); print(report())
elif __name__ == '__main__':
    if DEV == 'cuda': assert torch.cuda.is_available(), 'this benchmark needs a CUDA GPU (or --cpu-smoke)'
    import transformers
    facts = env_facts(); facts['commit'] = A.commit; facts['transformers'] = transformers.__version__
    facts['command'] = 'python benchmarks/infer_speed.py ' + ' '.join(sys.argv[1:])
    RES['env'] = facts; save()
    torch.manual_seed(0)
    for name, need, fn in [('device', 5, device), ('matmul', 60, matmul), ('model', 40 if A.quick else 150, whole_model), ('stories', 20, stories)]:
        if name in A.parts: part(name, need, fn)
    log('done'); save()
    print(report())
