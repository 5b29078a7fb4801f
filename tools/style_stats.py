"""House-style numbers of the library (exported cells): lines per cell, public symbols per cell, long lines.

    python tools/style_stats.py            # summary over nbs/*.ipynb
    python tools/style_stats.py --by-nb    # one row per notebook
"""
import argparse, ast, json, re, statistics
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def cells(nb):
    for c in json.loads(nb.read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'code' and re.match(r'\s*#\|\s*export\b', src): yield src

def symbols(src):
    try: tree = ast.parse(src)
    except SyntaxError: return 0
    return sum(1 for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and not n.name.startswith('_'))

def stats(nbs):
    lens, syms, lines = [], [], []
    for nb in nbs:
        for src in cells(nb):
            body = [l for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|')]
            if not body or all(l.startswith(('import', 'from')) for l in body): continue
            lens.append(len(body)); syms.append(symbols(src)); lines += [len(l) for l in body]
    q = lambda xs, p: sorted(xs)[int(p * (len(xs) - 1))] if xs else 0
    return dict(cells=len(lens), median=statistics.median(lens) if lens else 0, p90=q(lens, .9), max=max(lens, default=0),
                multi_symbol=sum(s > 1 for s in syms), over110=round(100 * sum(l > 110 for l in lines) / max(len(lines), 1), 1),
                over120=round(100 * sum(l > 120 for l in lines) / max(len(lines), 1), 1))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--by-nb', action='store_true'); a = ap.parse_args()
    nbs = sorted((root/'nbs').glob('[0-9]*.ipynb'))
    if a.by_nb:
        for nb in nbs: print(f"{nb.name:28s}", stats([nb]))
    print('all', stats(nbs))
