"GPU path of the pruner: the same masks as the CPU path on stories260K. Skipped without CUDA (CI has none)."
import pytest, torch
from wanda_nb.models import load_model
from wanda_nb.data import load_corpus
from wanda_nb.calib import calib_windows
from wanda_nb.prune import prune_model
from wanda_nb.arch import decoder_blocks, block_linears

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

def _masks(model):
    return {f'{i}.{n}': (m.weight == 0).cpu() for i, b in enumerate(decoder_blocks(model)) for n, m in block_linears(b).items()}

@cuda
@pytest.mark.parametrize('method,structure,offload', [('wanda', None, False), ('wanda', '2:4', False), ('magnitude', None, False), ('wanda', None, True)])
def test_gpu_masks_equal_cpu(method, structure, offload):
    model, tok = load_model('stories260K')
    calib = calib_windows(load_corpus('c4'), tok, nsamples=32, seqlen=256, seed=0)
    kw = dict(method=method, sparsity=None if structure else 0.5, structure=structure, progress=False)
    cpu, _ = load_model('stories260K')
    prune_model(cpu, calib, **kw)
    gpu, _ = load_model('stories260K', device='cpu' if offload else 'cuda')
    prune_model(gpu, calib, device='cuda', offload=offload, **kw)
    a, b = _masks(cpu), _masks(gpu)
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k

@cuda
def test_gpu_sparsegpt_close_to_cpu():
    model, tok = load_model('stories260K')
    calib = calib_windows(load_corpus('c4'), tok, nsamples=32, seqlen=256, seed=0)
    cpu, _ = load_model('stories260K'); prune_model(cpu, calib, method='sparsegpt', sparsity=0.5, progress=False)
    gpu, _ = load_model('stories260K', device='cuda'); prune_model(gpu, calib, method='sparsegpt', sparsity=0.5, device='cuda', progress=False)
    a, b = _masks(cpu), _masks(gpu)
    agree = sum((a[k] == b[k]).sum().item() for k in a) / sum(a[k].numel() for k in a)
    assert agree > 0.99, agree   # float32 Cholesky on two devices: a few ties may flip

@cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_gpu_dense_hidden_exact(dtype):
    "On CUDA the cached head inputs reproduce the side-by-side KL and perplexity to the bit (as benchmarks/eval_speed.py found)."
    from wanda_nb.metrics import dense_hidden, kl_to_dense
    from wanda_nb.models import tiny_model
    dense = tiny_model('llama').to('cuda', dtype); other = tiny_model('llama').to('cuda', dtype)
    with torch.no_grad():
        for p in other.parameters(): p.add_(0.01 * torch.randn_like(p))
    w = torch.randint(3, 512, (6, 32), generator=torch.Generator().manual_seed(0))
    dh = dense_hidden(dense, w, batch_size=2)
    assert dh is not None
    assert kl_to_dense(other, dh, w, batch_size=2) == kl_to_dense(other, dense, w, batch_size=2)
