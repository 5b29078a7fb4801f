"Installed-package checks of `wanda_nb.models`: save/load round trip through a folder, dtypes, and the clear errors."
import huggingface_hub.constants
import pytest, torch
import wanda_nb.models as M
from wanda_nb.models import load_model, context_length, tiny_model, shaped_model, LLAMA31_8B


@pytest.fixture(scope='module')
def stories(): return load_model()


def test_public_api():
    assert set(M.__all__) == {'LLAMA31_8B', 'load_model', 'context_length', 'tiny_model', 'shaped_model',
                              'SMOLLM2', 'cache_dir', 'smollm2_gguf', 'weight_source', 'source_label'}


def test_round_trip_through_folder(stories, tmp_path):
    model, tok = stories
    model.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    m2, t2 = load_model(str(tmp_path))
    ids = torch.tensor([tok("Lily saw a big red ball in the park.").input_ids])
    assert ids[0, 0].item() == 1 and t2.bos_token_id == 1 and t2.pad_token_id == 2
    assert t2("Once upon a time").input_ids == [1, 403, 407, 261, 378]
    with torch.no_grad(): assert torch.equal(model(ids).logits, m2(ids).logits)
    assert m2.lm_head.weight is m2.model.embed_tokens.weight
    assert m2.config.name_or_path == str(tmp_path) and context_length(m2) == 512 and not m2.training


def test_dtype_and_name(stories):
    m, tok = load_model(dtype=torch.bfloat16)
    assert {p.dtype for p in m.parameters()} == {torch.bfloat16}
    assert m.lm_head.weight is m.model.embed_tokens.weight and m.config.name_or_path == 'stories260K'
    ids = torch.tensor([tok("Once upon a time").input_ids])
    with torch.no_grad(): a, b = m(ids).logits.float(), stories[0](ids).logits
    assert (a - b).abs().max() < 0.5  # bf16 keeps ~3 significant digits of logits of size ~19
    assert a[0, -1].argmax() == b[0, -1].argmax()


def test_missing_local_folder():
    with pytest.raises(FileNotFoundError, match='does not exist'): load_model('./no/such/model')


def test_offline_hub_id_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(FileNotFoundError, match="Cannot load model 'wanda-nb/no-such-model'.*not in the Hugging Face cache") as e:
        load_model('wanda-nb/no-such-model')
    assert e.value.__suppress_context__  # no chained hub traceback


def test_stories_path_without_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='stories260K.bin'): load_model(path=tmp_path)


def test_bad_names():
    with pytest.raises(ValueError, match="'gpt_neox', 'gpt2'"): tiny_model('bert')
    with pytest.raises(ValueError, match='Llama-3.1-8B'): shaped_model('meta-llama/Llama-2-7b')
    with pytest.raises(ValueError, match='positive int'): shaped_model(device='meta', n_layers=-1)


def test_tiny_and_shaped():
    for fam in ('gpt2', 'opt'):
        m = tiny_model(fam, seed=1)
        assert context_length(m) == 512 and m.config.name_or_path == f'tiny-{fam}'
    m = shaped_model(device='meta', n_layers=2)
    assert len(m.model.layers) == 2 and m.config.num_key_value_heads == LLAMA31_8B['num_key_value_heads'] == 8
    assert m.config.rope_parameters['rope_theta'] == 500000.0 and context_length(m) == 131072
