"""What 2:4 sparsity buys at inference, measured on one GPU.

    python benchmarks/sparse_speed.py --out benchmarks/results

1. Per-matmul: the seven linear shapes of a Llama-3.1-8B block (q, k, v, o, gate, up, down) at 1 … 16,384
   tokens: dense bf16 `F.linear` vs 2:4 through `to_sparse_semi_structured` (cuSPARSELt backend; the CUTLASS
   backend refuses compute capability 9.0) vs unstructured 50% through CSR (`torch.sparse.mm`).
2. End to end: a Llama-3.1-8B-*shaped* model (real configuration, random bf16 weights: speed does not depend
   on the values) with every decoder linear 2:4-masked, then converted to the sparse format: prefill tokens/s
   and decode latency against the masked dense model, and a numerical check that both give the same logits.
"""
import argparse, gc
import torch, torch.nn.functional as F
from common import cuda_time, env_facts, write_results, md_table
from wanda_nb.models import shaped_model, LLAMA31_8B
from wanda_nb.mask import nm_mask, magnitude_score

def shapes(cfg=LLAMA31_8B):
    "(name, d_out, d_in) of the seven decoder linears."
    h, i, kv = cfg['hidden_size'], cfg['intermediate_size'], cfg['num_key_value_heads'] * (cfg['hidden_size'] // cfg['num_attention_heads'])
    return [('q', h, h), ('k', kv, h), ('v', kv, h), ('o', h, h), ('gate', i, h), ('up', i, h), ('down', h, i)]

def masked_24(w):
    "`w` with a 2:4 magnitude mask applied (the pattern, not the choice, is what matters for speed)."
    return w.masked_fill(nm_mask(magnitude_score(w), 2, 4), 0)

def matmul_table(tokens, reps):
    from torch.sparse import to_sparse_semi_structured, SparseSemiStructuredTensor
    SparseSemiStructuredTensor._FORCE_CUTLASS = False
    rows = []
    for name, d_out, d_in in shapes():
        w = masked_24(torch.randn(d_out, d_in, device='cuda', dtype=torch.bfloat16))
        ws = to_sparse_semi_structured(w)
        w50 = w.clone(); w50[torch.rand_like(w, dtype=torch.float32) < 0.5] = 0   # unstructured, ~50%+
        try: wcsr = w50.to_sparse_csr(); csr_ok = True
        except Exception: csr_ok = False
        for n in tokens:
            x = torch.randn(n, d_in, device='cuda', dtype=torch.bfloat16)
            err = ((F.linear(x, ws) - F.linear(x, w)).float().norm() / F.linear(x, w).float().norm()).item()
            r = dict(shape=name, d_out=d_out, d_in=d_in, tokens=n,
                     dense_ms=cuda_time(lambda: F.linear(x, w), reps=reps),
                     sparse24_ms=cuda_time(lambda: F.linear(x, ws), reps=reps), rel_err_24=err)
            if csr_ok and n <= 4096:   # CSR gets very slow; beyond this it only wastes device time
                try: r['csr50_ms'] = cuda_time(lambda: torch.sparse.mm(wcsr, x.t()), warmup=1, reps=3)
                except Exception as e: r['csr50_ms'] = float('nan'); r['csr_error'] = type(e).__name__
            try:
                packed = torch._cslt_compress(w); alg = best_alg(packed, x)
                r['direct24_ms'] = cuda_time(lambda: cslt_linear(packed, x, alg), reps=reps); r['alg'] = alg
                r['speedup_direct'] = r['dense_ms'] / r['direct24_ms']
            except Exception as e: r['direct_error'] = f'{type(e).__name__}: {e}'[:200]
            r['speedup_24'] = r['dense_ms'] / r['sparse24_ms']
            if 'csr50_ms' in r: r['speedup_csr'] = r['dense_ms'] / r['csr50_ms']
            rows.append(r)
            print(r, flush=True)
        del w, ws, w50; gc.collect(); torch.cuda.empty_cache()
    return rows

def decoder_linears(model):
    "(parent module, attribute name, linear) for every nn.Linear inside the decoder blocks."
    return [(p, n, m) for blk in model.model.layers for p in blk.modules() for n, m in p.named_children() if isinstance(m, torch.nn.Linear)]

def cslt_linear(packed, x, alg=0):
    "x (n, d_in) @ Wᵀ through cuSPARSELt directly (`packed` = torch._cslt_compress(W)), rows padded to a multiple of 16."
    n = x.shape[0]; pad = (-n) % 16
    xp = F.pad(x, (0, 0, 0, pad)) if pad else x
    y = torch._cslt_sparse_mm(packed, xp.t(), transpose_result=True, alg_id=alg)   # (n + pad, d_out)
    return y[:n] if pad else y

_ALG = {}
def best_alg(packed, x):
    "cuSPARSELt's own algorithm search for this shape (cached per weight shape and token count)."
    k = (tuple(packed.shape), x.shape[0])
    if k not in _ALG:
        try: _ALG[k] = torch._cslt_sparse_mm_search(packed, x.t(), transpose_result=True)
        except Exception: _ALG[k] = 0
    return _ALG[k]

class SparseLinear(torch.nn.Module):
    "A bias-free linear holding a cuSPARSELt-compressed 2:4 weight; inputs flattened to 2-D."
    def __init__(self, w):
        super().__init__()
        self.packed, self.d_out = torch._cslt_compress(w), w.shape[0]
    def forward(self, x):  # (..., d_in) -> (..., d_out)
        x2 = x.reshape(-1, x.shape[-1])
        return cslt_linear(self.packed, x2, best_alg(self.packed, x2) if x2.shape[0] % 16 == 0 else 0).view(*x.shape[:-1], self.d_out)

@torch.no_grad()
def end_to_end(n_layers, prefill, decode_ctx, decode_steps, reps):
    model = shaped_model('meta-llama/Llama-3.1-8B', dtype=torch.bfloat16, device='cuda', n_layers=n_layers)
    for _, _, lin in decoder_linears(model): lin.weight.data = masked_24(lin.weight.data)
    g = torch.Generator(device='cuda').manual_seed(0)
    V = model.config.vocab_size
    def prefill_ms(b, t):
        ids = torch.randint(0, V, (b, t), device='cuda', generator=g)
        return cuda_time(lambda: model(ids, use_cache=False, logits_to_keep=1), warmup=2, reps=reps)
    def decode_ms(b):
        from transformers import DynamicCache
        ids = torch.randint(0, V, (b, decode_ctx), device='cuda', generator=g)
        def run():
            cache = DynamicCache(config=model.config)
            out = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            tok = out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize(); a = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(decode_steps): tok = model(tok, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)
            e.record(); torch.cuda.synchronize()
            return a.elapsed_time(e) / decode_steps
        run(); return sorted(run() for _ in range(3))[1]
    check_ids = torch.randint(0, V, (2, 256), device='cuda', generator=g)
    ref = model(check_ids, use_cache=False).logits.float()
    dense = dict(prefill={f'{b}x{t}': prefill_ms(b, t) for b, t in prefill}, decode={b: decode_ms(b) for b in (1, 16)})
    for p, n, lin in decoder_linears(model): setattr(p, n, SparseLinear(lin.weight.data))
    got = model(check_ids, use_cache=False).logits.float()
    rel = ((got - ref).norm() / ref.norm()).item()
    agree = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
    sparse = dict(prefill={f'{b}x{t}': prefill_ms(b, t) for b, t in prefill}, decode={b: decode_ms(b) for b in (1, 16)})
    rows = []
    for k in dense['prefill']:
        b, t = map(int, k.split('x'))
        rows.append(dict(phase='prefill', batch=k, tokens=b*t, dense_ms=dense['prefill'][k], sparse24_ms=sparse['prefill'][k],
                         dense_tok_s=b*t/dense['prefill'][k]*1e3, sparse24_tok_s=b*t/sparse['prefill'][k]*1e3,
                         speedup=dense['prefill'][k]/sparse['prefill'][k]))
    for b in dense['decode']:
        rows.append(dict(phase=f'decode (ctx {decode_ctx})', batch=b, tokens=b, dense_ms=dense['decode'][b], sparse24_ms=sparse['decode'][b],
                         speedup=dense['decode'][b]/sparse['decode'][b]))
    del model; gc.collect(); torch.cuda.empty_cache()
    return dict(n_layers=n_layers, rows=rows, logits_rel_err=rel, argmax_agreement=agree)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='benchmarks/results')
    ap.add_argument('--tokens', type=int, nargs='*', default=[1, 16, 128, 1024, 4096, 8192, 16384])
    ap.add_argument('--n-layers', type=int, default=32, help='decoder blocks of the 8B-shaped model (32 = the real depth)')
    ap.add_argument('--reps', type=int, default=10)
    a = ap.parse_args()
    assert torch.cuda.is_available(), 'this benchmark needs a CUDA GPU'
    facts = env_facts()
    facts['cusparselt'] = bool(getattr(torch.backends, 'cusparselt', None) and torch.backends.cusparselt.is_available())
    mm = matmul_table(a.tokens, a.reps)
    write_results(a.out, 'sparse_speed_matmul_partial', dict(env=facts, matmul=mm), '')   # kept if the end-to-end part fails
    e2e = end_to_end(a.n_layers, prefill=[(1, 2048), (4, 2048), (8, 2048)], decode_ctx=512, decode_steps=32, reps=a.reps)
    res = dict(env=facts, matmul=mm, end_to_end=e2e)
    md = (f"# 2:4 and unstructured sparsity at inference\n\n{facts['date']} · {facts['gpu']} · torch {facts['torch']} (CUDA {facts['cuda']}) · "
          f"cuSPARSELt available: {facts['cusparselt']} · commit {facts['commit']}\n\nCommand: `{facts['command']}`\n\n"
          "Weights: random bf16 in Llama-3.1-8B shapes (timing does not depend on values). Times are medians of CUDA-event-timed calls, ms. "
          "`sparse24` = `F.linear` on a `to_sparse_semi_structured` weight (the documented route); `direct24` = `torch._cslt_sparse_mm` on a "
          "`torch._cslt_compress`ed weight with cuSPARSELt's algorithm search, no tensor subclass (what the whole-model rows use); "
          "`csr50` = unstructured 50% through `torch.sparse.mm` on CSR (measured up to 4,096 tokens).\n\n"
          "## Per matmul\n\n" + md_table(mm, ['shape', 'd_out', 'd_in', 'tokens', 'dense_ms', 'sparse24_ms', 'speedup_24', 'direct24_ms', 'speedup_direct', 'csr50_ms', 'speedup_csr', 'rel_err_24']) +
          f"\n## Whole model ({e2e['n_layers']} blocks, every decoder linear 2:4)\n\n" +
          md_table(e2e['rows'], ['phase', 'batch', 'tokens', 'dense_ms', 'sparse24_ms', 'dense_tok_s', 'sparse24_tok_s', 'speedup']) +
          f"\nSparse vs masked-dense logits: relative error {e2e['logits_rel_err']:.2e}, argmax agreement {e2e['argmax_agreement']:.4f}.\n")
    for p in write_results(a.out, 'sparse_speed', res, md): print('wrote', p)
    print(md)
