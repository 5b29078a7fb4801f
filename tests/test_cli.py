"The `wanda_nb` console command end to end, as a user runs it (installed entry point, offline)."
import os, subprocess, sys
from pathlib import Path
import pytest

exe = Path(sys.executable).parent/'wanda_nb'
env = os.environ | dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1')
small = ['--method', 'wanda', '--structure', '2:4', '--nsamples', '8', '--max-windows', '2', '--eval-corpora', 'stories']

def run(*args):
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=600)

def test_prunes_reports_and_refuses_a_different_run(tmp_path):
    out = tmp_path/'run'
    r = run(*small, '--out', str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert any(l.split()[:2] == ['dense', 'unstructured'] for l in lines) and any(l.split()[:2] == ['wanda', '2:4'] for l in lines)
    assert len(list(out.glob('*.json'))) == 2 and (out/'run.settings').exists()
    rows = lambda text: [l for l in text.splitlines() if l.split()[:1] in (['dense'], ['wanda'])]
    again = run(*small, '--out', str(out))               # the same run resumes: the stored records, the same table
    assert again.returncode == 0 and rows(again.stdout) == rows(r.stdout)
    other = run(*small, '--seed', '1', '--out', str(out))  # a different run into the same folder: refused, nothing written
    assert other.returncode != 0 and 'already holds a different run' in other.stderr
    assert len(list(out.glob('*.json'))) == 2

def test_bad_input_fails_before_anything_is_written(tmp_path):
    r = run('--seqlen', '1024', '--out', str(tmp_path/'x'))
    assert r.returncode != 0 and "longer than the model's context (512 tokens)" in r.stderr
    assert not (tmp_path/'x'/'run.settings').exists()
    r = run('--method', 'obs', '--out', str(tmp_path/'y'))
    assert r.returncode != 0 and "unknown method 'obs'" in r.stderr
