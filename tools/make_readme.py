"""Render `nbs/index.ipynb` into `README.md` (nbdev 2 does this with quarto, which is not available here).

Markdown cells are copied, code cells become ```python blocks followed by their text output.
Cells marked `#| hide` are skipped, as nbdev would. `--check` exits 1 when README.md is stale.
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def _text(o):
    if o.get('output_type') == 'stream': return ''.join(o['text'])
    d = o.get('data', {})
    if 'text/markdown' in d: return ''.join(d['text/markdown'])
    if 'text/plain' in d: return ''.join(d['text/plain'])
    return ''

def render(nb_path=root/'nbs'/'index.ipynb'):
    "The README text for the notebook at `nb_path`."
    cells, parts = json.loads(Path(nb_path).read_text())['cells'], []
    for c in cells:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#| hide') or src.startswith('#|hide'): continue
        if c['cell_type'] == 'markdown': parts.append(src); continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|'))
        parts.append(f"```python\n{code}\n```")
        out = ''.join(_text(o) for o in c.get('outputs', [])).rstrip()
        if out: parts.append(f"```\n{out}\n```" if not out.startswith('|') else out)
    return "<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n" + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    new, readme = render(), root/'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text() == new
        print('README.md is in step with nbs/index.ipynb' if ok else 'README.md is stale: run `python tools/make_readme.py`')
        sys.exit(0 if ok else 1)
    readme.write_text(new)
