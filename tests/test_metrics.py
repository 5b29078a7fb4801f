"Properties and parity tests of wanda_nb.metrics that are awkward in the notebook."
import hashlib, json, math
from pathlib import Path
from types import SimpleNamespace
import pytest, torch
from wanda_nb.metrics import eval_windows, perplexity, dense_logprobs, kl_to_dense, evaluate, make_stories
from wanda_nb.models import load_model, tiny_model

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)  # tiny models: one thread is faster, and the CI machine is shared

class ConstLM(torch.nn.Module):
    "Every logit equals `value` (uniform next-token distribution over V)."
    def __init__(self, V, ctx=64, value=0.):
        super().__init__(); self.V, self.value = V, value
        self.config = SimpleNamespace(max_position_embeddings=ctx); self.p = torch.nn.Parameter(torch.zeros(()))
    def forward(self, input_ids): return SimpleNamespace(logits=torch.full((*input_ids.shape, self.V), self.value) + self.p)

@pytest.fixture(scope='module')
def stories(): return load_model('stories260K')

@pytest.fixture(scope='module')
def tiny(): return tiny_model('llama', seed=0), tiny_model('llama', seed=1)

@pytest.mark.parametrize('V', [2, 7, 512])
def test_uniform_model_has_perplexity_V(V):
    r = perplexity(ConstLM(V), torch.randint(0, V, (4, 9)), batch_size=3)
    assert abs(r['ppl'] - V) < 1e-5 * V and r['n_tokens'] == 4 * 8 and r['n_windows'] == 4 and r['seqlen'] == 9

def test_perplexity_matches_hf_loss(tiny):
    "Parity with transformers' own shifted cross entropy: exp of the mean per-window loss (equal counts)."
    model, _ = tiny
    w = torch.randint(0, 512, (5, 33), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): losses = [model(input_ids=x[None], labels=x[None]).loss.double() for x in w]
    ref = math.exp(torch.stack(losses).mean().item())
    for bs in (1, 2, 5):
        assert abs(perplexity(model, w, batch_size=bs)['ppl'] / ref - 1) < 1e-6

def test_kl_parity_and_forms(tiny):
    "KL equals F.kl_div on the full log-probs; cached and side-by-side forms agree; identical models give exactly 0."
    a, b = tiny
    w = torch.randint(0, 512, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        lp = a(input_ids=w).logits[:, :-1].float().log_softmax(-1); lq = b(input_ids=w).logits[:, :-1].float().log_softmax(-1)
    ref = torch.nn.functional.kl_div(lq, lp, log_target=True, reduction='none').sum(-1)   # (3, 16): KL(p_a || p_b)
    cached, side = kl_to_dense(b, dense_logprobs(a, w, batch_size=2), w), kl_to_dense(b, a, w, batch_size=2)
    assert abs(cached['kl'] - ref.mean().item()) < 1e-6 and abs(side['kl'] - cached['kl']) < 1e-6
    assert cached['n_tokens'] == 3 * 16 and 0 <= cached['top1_agree'] <= 1 and cached['kl_median'] <= cached['kl_p99']
    same = kl_to_dense(a, a, w)
    assert same['kl'] == 0 and same['top1_agree'] == 1

def test_windows_are_the_stream_prefix(stories):
    _, tok = stories
    rows = ['Once upon a time, there was a cat.', '', 'The cat liked milk.', 'Lily said hi.']
    stream = tok('\n\n'.join(rows))['input_ids']
    assert stream[0] == tok.bos_token_id and stream.count(tok.bos_token_id) == 1
    for T in (2, 3, 5, 8):
        w = eval_windows(rows, tok, T)
        assert w.shape == (len(stream) // T, T) and w.flatten().tolist() == stream[:w.numel()]

def test_errors(stories):
    model, tok = stories
    with pytest.raises(ValueError, match="exceeds the model's context length 512"): perplexity(model, torch.ones(1, 1024, dtype=torch.long))
    with pytest.raises(ValueError, match='NaN/inf logits'): perplexity(ConstLM(5, value=float('nan')), torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='unknown corpus'): evaluate(model, tok, ['wikitext3'], seqlen=512)
    with pytest.raises(ValueError, match='not enough for one window'): eval_windows(['hi'], tok, 64)
    with pytest.raises(ValueError, match='do not match windows'): kl_to_dense(model, torch.zeros(2, 3, 512), torch.ones(2, 5, dtype=torch.long))

def test_make_stories_refuses(stories, tmp_path):
    model, tok = stories
    f = tmp_path/'s.jsonl'; f.write_text('keep me\n')
    with pytest.raises(FileExistsError, match='overwrite=True'): make_stories(model, tok, n=1, out=f)
    assert f.read_text() == 'keep me\n'
    with pytest.raises(ValueError, match='float32'): make_stories(tiny_model('llama', dtype=torch.bfloat16), tok, n=1, out=tmp_path/'t.jsonl')

def test_committed_stories_file():
    f = ROOT/'data'/'stories260K_samples.jsonl'
    data = f.read_bytes()
    assert len(data) < 300_000
    assert hashlib.sha256(data).hexdigest() == (ROOT/'data'/'stories260K_samples.jsonl.sha256').read_text().split()[0]
    rows = [json.loads(l)['text'] for l in data.decode().splitlines()]
    assert len(rows) == 200 and all(rows)
    assert 'make_stories(model, tok, n=200' in (ROOT/'data'/'stories260K_samples.md').read_text()

def test_eval_speed_cpu(tmp_path):
    "benchmarks/eval_speed.py on a CPU: the cached head inputs (`DenseHidden`) give the side-by-side numbers to the bit."
    import subprocess, sys
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks/eval_speed.py'), '--device', 'cpu', '--tiny', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path/'eval_speed_cpu.json').read_text())
    assert res['identical'] is True and res['reference'] == 'DenseHidden' and res['shape'] == 'tiny'

def test_dense_hidden_tiny_families():
    "On every tiny family the head alone reproduces the logits, so the cache is kept, and KL equals the side-by-side result."
    from wanda_nb.metrics import dense_hidden
    w = torch.randint(3, 512, (4, 32), generator=torch.Generator().manual_seed(0))
    for f in ('llama', 'mistral', 'qwen2', 'opt', 'gpt_neox', 'gpt2'):
        dense, other = tiny_model(f), tiny_model(f)
        with torch.no_grad():
            for p in other.parameters(): p.add_(0.01 * torch.randn_like(p))
        dh = dense_hidden(dense, w, batch_size=2)
        assert dh is not None, f
        assert kl_to_dense(other, dh, w, batch_size=2) == kl_to_dense(other, dense, w, batch_size=2), f
