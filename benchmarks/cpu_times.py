"""Wall time of the two README commands' work on this machine's CPU (the targets: main job ≤ 60 s, nbdev_test ≤ 5 min).

    python benchmarks/cpu_times.py --out benchmarks/results

Times `wanda_nb --out <tmp>` (the main job on stories260K, after install) and `nbdev_test --n_workers 2`
(every notebook, default flags), each once, offline. Run it on an otherwise idle machine.
"""
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path
from common import env_facts, write_results, md_table, root

def timed(cmd, env):
    t = time.time(); r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    return dict(command=' '.join(cmd), wall_s=round(time.time() - t, 1), returncode=r.returncode, tail=(r.stdout + r.stderr)[-2000:])

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0]); ap.add_argument('--out', default='benchmarks/results')
    a = ap.parse_args()
    env = os.environ | dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1')
    bin_ = Path(sys.executable).parent
    facts = env_facts() | dict(cpus=os.cpu_count(), cpu=next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?'))
    rows = [timed([str(bin_/'wanda_nb'), '--out', tempfile.mkdtemp() + '/demo'], env) | dict(what='main job (make demo)', target_s=60),
            timed([str(bin_/'nbdev_test'), '--n_workers', '2'], env) | dict(what='nbdev_test, all notebooks', target_s=300)]
    for r in rows: print(r['what'], r['wall_s'], 's, rc', r['returncode'])
    md = (f"# CPU wall times\n\n{facts['date']} · {facts['cpus']} × {facts['cpu']} · torch {facts['torch']} · commit {facts['commit']}\n\n"
          f"Command: `{facts['command']}`\n\n" + md_table(rows, ['what', 'command', 'wall_s', 'target_s', 'returncode']))
    for p in write_results(a.out, 'cpu_times', dict(env=facts, rows=rows), md): print('wrote', p)
