"Gemma-2 and Gemma-3 (attention arguments per layer type) pruned with masks equal to an independent per-block reference."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import pytest, torch
from transformers import AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig
from wanda_nb.arch import block_linears, decoder_blocks, capture_inputs, run_block, weight, layer_types
from wanda_nb.calib import collect_stats
from wanda_nb.mask import row_mask, wanda_score
from wanda_nb.prune import prune_model
from wanda_nb.sparsegpt import sparsegpt_prune

torch.set_num_threads(1)
IDS = torch.randint(3, 512, (6, 24), generator=torch.Generator().manual_seed(0)) # 24 tokens >> the 4-token window
SMALL = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
             head_dim=16, max_position_embeddings=512, sliding_window=4, bos_token_id=1, eos_token_id=2, pad_token_id=0)

def tiny(family, seed=0):
    "A random tiny Gemma-2 (sliding, full, sliding, full) or Gemma-3 (sliding, sliding, full, sliding)."
    torch.manual_seed(seed)
    cfg = (Gemma2Config(num_hidden_layers=4, **SMALL) if family == 'gemma2' else
           Gemma3TextConfig(num_hidden_layers=4, sliding_window_pattern=3, **SMALL))
    return AutoModelForCausalLM.from_config(cfg).eval()

def naive(model, ids, method, s):
    "Reference: before pruning block i, measure its layers in full-model forward passes (blocks < i already pruned)."
    for b in decoder_blocks(model):
        lin = block_linears(b)
        with torch.no_grad(), collect_stats(lin, hessian=method == 'sparsegpt') as st: model(ids, use_cache=False)
        for n, l in lin.items():
            W = weight(l)
            if method == 'wanda': W.masked_fill_(row_mask(wanda_score(W, st[n].norm), s), 0)
            else: W.copy_(sparsegpt_prune(W, st[n].H, s)[0])

@pytest.mark.parametrize('family', ['gemma2', 'gemma3'])
def test_layer_types_mixed(family):
    assert len(set(layer_types(tiny(family)))) == 2

@pytest.mark.parametrize('family', ['gemma2', 'gemma3'])
@pytest.mark.parametrize('method', ['wanda', 'sparsegpt'])
def test_masks_equal_the_per_block_reference(family, method):
    a, b = tiny(family), tiny(family)
    prune_model(a, IDS, method, 0.5, batch_size=4, progress=False)
    naive(b, IDS, method, 0.5)
    for (n, la), lb in zip([(f'{i}.{n}', l) for i, blk in enumerate(decoder_blocks(a)) for n, l in block_linears(blk).items()],
                           [l for blk in decoder_blocks(b) for l in block_linears(blk).values()]):
        if method == 'wanda': assert torch.equal(weight(la) == 0, weight(lb) == 0), n
        else: torch.testing.assert_close(weight(la), weight(lb), atol=1e-4, rtol=1e-4)
    assert torch.isfinite(a(IDS).logits).all()

@pytest.mark.parametrize('family', ['gemma2', 'gemma3'])
def test_block_zero_arguments_would_be_wrong(family):
    "The test above is sensitive: a full-attention block replayed with block 0's (sliding) arguments computes another output."
    m = tiny(family)
    blocks, types = decoder_blocks(m), layer_types(m)
    i = types.index('full_attention')
    (h, args, kw), = capture_inputs(m, IDS[:2], batch_size=2)
    with torch.no_grad():
        right = run_block(blocks[i], [(h, args, kw)])[0]
        wrong = blocks[i](h, *args, **dict(kw))
    assert not torch.allclose(right, wrong[0] if isinstance(wrong, tuple) else wrong, atol=1e-3)
