"""The `wanda_nb.data` contract, checked from the installed package: resolution precedence and error messages."""
import shutil
import pytest
from wanda_nb.data import CORPORA, Corpus, find_file, load_corpus

REL = 'models/stories260K/tok512.model'  # a small mirror file with a known sha256


def test_precedence_env_then_explicit(tmp_path, monkeypatch):
    mirror = find_file(REL)
    env = tmp_path/'env'/REL; env.parent.mkdir(parents=True); shutil.copy(mirror, env)
    mine = tmp_path/'mine.model'; shutil.copy(mirror, mine)   # a name the mirror does not use: not sha-checked
    monkeypatch.setenv('WANDA_NB_DATA', str(tmp_path/'env'))
    assert find_file(REL) == env
    assert find_file(REL, path=mine) == mine
    monkeypatch.delenv('WANDA_NB_DATA')
    assert find_file(REL) == mirror


def test_corrupt_and_missing(tmp_path, monkeypatch):
    env = tmp_path/REL; env.parent.mkdir(parents=True)
    b = bytearray(find_file(REL).read_bytes()); b[10] ^= 0xFF; env.write_bytes(bytes(b))
    monkeypatch.setenv('WANDA_NB_DATA', str(tmp_path))
    with pytest.raises(ValueError, match='dfff07d929db979913f166ec94a6f5ecad4c70cfed8eb5c9cbe7e464455e46f5') as e:
        find_file(REL)
    assert str(env) in str(e.value)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(FileNotFoundError) as e: find_file('nowhere/x.bin', hub=('some/repo', 'x.bin'))
    msg = str(e.value)
    assert str(tmp_path/'nowhere'/'x.bin') in msg and 'refused' in msg and 'path=' in msg and 'WANDA_NB_DATA' in msg
    with pytest.raises(FileNotFoundError, match='07_metrics'): load_corpus('stories', path=tmp_path/'none.jsonl')


def test_names_and_rows():
    with pytest.raises(ValueError, match='stories'): load_corpus('ptb')
    with pytest.raises(ValueError, match='valid splits'): load_corpus('wikitext2', 'dev')
    wt = load_corpus('wikitext2', 'validation')
    assert isinstance(wt, Corpus) and len(wt.rows) == 3760 and set(CORPORA) == {'wikitext2', 'c4', 'code', 'stories'}
    assert all(r == '' or r.strip() for r in wt.rows) and '4,358' not in repr(wt)
