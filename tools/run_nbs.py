"""Execute notebooks in place so that their stored outputs (the rendered documentation) are current.

    python tools/run_nbs.py                      # every notebook in nbs/, skipping `#| cuda` cells
    python tools/run_nbs.py nbs/03_mask.ipynb    # one notebook
    python tools/run_nbs.py --skip cuda,slow nbs/X.ipynb  # also skip slow cells (their old outputs are kept)
    python tools/run_nbs.py --no-write nbs/2*.ipynb       # make records only: the notebooks stay as committed, so the
                                                          # tree stays clean and every record names a clean commit

Cells that are skipped keep whatever output they had, so the output of a `#| cuda` cell stays the one
produced on a GPU. Stops at the first error. Runs `nbdev_clean` on each notebook it wrote (and no other).
"""
import argparse, os, subprocess, sys, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.process import NBProcessor, extract_directives

root = Path(__file__).resolve().parent.parent

def run_nb(path, skip=('cuda',), write=True):
    "Execute the notebook at `path` in its own folder, skipping cells flagged with any of `skip`; write outputs back."
    nb = read_nb(path)
    def _skip(cell):
        if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
        return bool(set(skip) & set(extract_directives(cell, remove=False)))
    sh, t = CaptureShell(path), time.time()
    with working_directory(Path(path).parent): sh.run_all(nb, exc_stop=True, preproc=_skip)
    if write: write_nb(nb, path)
    return time.time() - t

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('nbs', nargs='*')
    ap.add_argument('--skip', default='cuda', help='comma-separated flags whose cells are skipped (default: cuda)')
    ap.add_argument('--no-write', action='store_true', help='execute only: leave the notebooks as they are')
    a = ap.parse_args()
    os.environ.setdefault('PYTHONHASHSEED', '0')
    for p in (a.nbs or sorted(str(p) for p in (root/'nbs').glob('[!_]*.ipynb'))):
        print(f'{p}: {run_nb(p, [f for f in a.skip.split(",") if f], not a.no_write):.1f} s', flush=True)
        if not a.no_write: subprocess.run([str(Path(sys.executable).parent/'nbdev_clean'), '--fname', str(p)], cwd=root, check=True)
