"""Shared by the benchmark scripts: timing with CUDA events, environment facts, writing results."""
import datetime, json, os, platform, subprocess, sys, time
from pathlib import Path
import torch

root = Path(__file__).resolve().parent.parent
if str(root) not in sys.path: sys.path.insert(0, str(root))

def cuda_time(fn, warmup=3, reps=10):
    "Median milliseconds of `fn()` over `reps` calls, timed with CUDA events after `warmup` calls."
    for _ in range(warmup): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts)//2]

def env_facts(commit:str|None=None):
    "Date, GPU, torch/CUDA versions and the commit (`commit` or $WANDA_NB_COMMIT when given: a copy's own .git may be stale)."
    commit = commit or os.environ.get('WANDA_NB_COMMIT')
    if not commit:
      try: commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root, capture_output=True, text=True).stdout.strip()
      except Exception: commit = ''
    return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else 'none',
                torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
                commit=commit or 'unknown',
                command=' '.join(['python', 'benchmarks/' + Path(sys.argv[0]).name] + sys.argv[1:]))

def write_results(out, name, results, md):
    "Write `name`.json and `name`.md into `out`; return their paths."
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    (out/f'{name}.json').write_text(json.dumps(results, indent=1))
    (out/f'{name}.md').write_text(md)
    return out/f'{name}.json', out/f'{name}.md'

def md_table(rows, cols):
    "A markdown table of dicts `rows` with columns `cols`."
    fmt = lambda v: f'{v:.3g}' if isinstance(v, float) else str(v)
    return '\n'.join(['| ' + ' | '.join(cols) + ' |', '|' + '---|'*len(cols)] +
                     ['| ' + ' | '.join(fmt(r.get(c, '')) for c in cols) + ' |' for r in rows]) + '\n'
