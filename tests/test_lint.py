"Checks on the notebooks themselves: guards against tests that cannot fail."
import json, re
from pathlib import Path

nbs = sorted((Path(__file__).resolve().parent.parent/'nbs').glob('*.ipynb'))

def _code(nb):
    return [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']

def test_expect_fail_is_a_context_manager():
    "fastcore's `expect_fail` is a context manager: `expect_fail(f, ...)` called bare asserts nothing."
    bad = [(nb.name, l.strip()) for nb in nbs for src in _code(nb) for l in src.splitlines()
           if re.search(r'(?<!with )\bexpect_fail\(', l) and not l.lstrip().startswith(('#', 'def ', 'from ', 'import '))]
    assert not bad, f'bare expect_fail calls (use `with expect_fail(Exc, contains=...):`): {bad}'

def test_notebooks_are_numbered():
    "Notebook names sort in dependency order (`00_…`, `03a_…`), index excepted."
    for nb in nbs:
        if nb.name == 'index.ipynb': continue
        assert re.match(r'\d\d[a-z]?_', nb.name), nb.name
