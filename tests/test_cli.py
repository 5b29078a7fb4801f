"The `wanda_nb` console command as users meet it: the installed entry point, offline, one subprocess per case."
import json, os, shutil, subprocess, sys, time
from pathlib import Path
import pytest

exe = Path(sys.executable).parent/'wanda_nb'
env = os.environ | dict(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1')
small = ['--method', 'wanda', '--structure', '2:4', '--nsamples', '8', '--max-windows', '2', '--eval-corpora', 'stories']
folder = ['--seqlen', '256', '--eval-seqlen', '512'] # a local folder gets the generic preset (2048 tokens)

def run(*args, extra_env=None, timeout=600):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=env | (extra_env or {}), timeout=timeout)

def rows(text): return [l for l in text.splitlines() if l.split()[:1] in (['dense'], ['wanda'], ['magnitude'])]

def refused(r, *needles):
    "Exit 2, one line on stderr (no traceback) that contains every needle."
    err = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert len(err) == 1 and err[0].startswith('wanda_nb: error: '), r.stderr[-3000:]
    for n in needles: assert n in err[-1], (n, err[-1])
    return err[-1]

@pytest.fixture(scope='module')
def hf_folder(tmp_path_factory):
    "stories260K written as a Hugging Face folder (config.json, model.safetensors, tokenizer files)."
    from wanda_nb.models import load_model
    d = tmp_path_factory.mktemp('models')/'stories-hf'
    m, tok = load_model('stories260K'); m.save_pretrained(d); tok.save_pretrained(d)
    return d

def damaged(src, tmp_path, how):
    d = tmp_path/'m'; shutil.copytree(src, d); how(d); return d

# --- the runs themselves ---------------------------------------------------------------------------------------------

def test_prunes_reports_reuses_and_refuses_a_different_run(tmp_path):
    out = tmp_path/'run'
    r = run(*small, '--out', out)
    assert r.returncode == 0, r.stderr[-2000:]
    head = r.stdout.splitlines()
    assert head[0].startswith('model stories260K · weights mirror:models/stories260K/stories260K.bin (sha256:') and 'fingerprint sha256:' in head[0] and head[3].endswith(f'records in {out}/') # the header first
    assert [l.split()[:2] for l in rows(r.stdout)] == [['dense', 'unstructured'], ['wanda', '2:4']]
    assert len(list(out.glob('*.json'))) == 2 and (out/'run.settings').exists()
    again = run(*small, '--out', out)               # the same run: the stored records, marked, no weights loaded
    assert again.returncode == 0 and [l.split()[:-3] for l in rows(again.stdout)] == [l.split()[:-1] for l in rows(r.stdout)]
    assert all('reused from' in l for l in rows(again.stdout)) and 'no weights loaded' in again.stdout
    other = run(*small, '--seed', '1', '--out', out)  # a different run into the same folder: refused, nothing written
    refused(other, 'already holds a different run', 'calibration', 'choose another --out')
    assert len(list(out.glob('*.json'))) == 2

def test_a_new_eval_and_save_complete_a_reused_run(tmp_path):
    out, save = tmp_path/'run', tmp_path/'pruned'
    assert run(*small, '--eval', 'ppl', '--out', out).returncode == 0
    r = run(*small, '--eval', 'ppl,kl', '--out', out)           # the record lacks KL: completed, not skipped
    assert r.returncode == 0, r.stderr[-2000:]
    assert all('completed' in l and '+kl' in l for l in rows(r.stdout)) and len(list(out.glob('*.json'))) == 2
    s = run(*small, '--eval', 'ppl,kl', '--save', save, '--out', out) # --save on a reused run: the model is written
    assert s.returncode == 0, s.stderr[-2000:]
    assert (save/'config.json').exists() and 'completed' in rows(s.stdout)[1] and 'reused from' in rows(s.stdout)[0]
    rec = next(json.loads(f.read_text()) for f in out.glob('*.json') if json.loads(f.read_text())['method'] == 'wanda')
    assert [c['saved'] for c in rec['completed']] == [None, str(save)] and all(c['same_sparsity'] for c in rec['completed'])

def test_gemma2_from_the_console(tmp_path):
    "A Gemma-2 folder (sliding and full attention layers) is pruned and evaluated like any other model."
    import torch
    from transformers import AutoModelForCausalLM, Gemma2Config
    from wanda_nb.models import load_model
    torch.manual_seed(0)
    cfg = Gemma2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, max_position_embeddings=512, sliding_window=16, bos_token_id=1,
                       eos_token_id=2, pad_token_id=0)
    d = tmp_path/'gemma2'; AutoModelForCausalLM.from_config(cfg).save_pretrained(d); load_model('stories260K')[1].save_pretrained(d)
    r = run('--model', d, *small, '--seqlen', '64', '--eval-seqlen', '128', '--out', tmp_path/'out')
    assert r.returncode == 0, r.stderr[-2000:]
    assert [l.split()[:3] for l in rows(r.stdout)] == [['dense', 'unstructured', '0.0'], ['wanda', '2:4', '0.5']]

# --- identity: content, not paths -------------------------------------------------------------------------------------

def test_weights_changed_at_the_same_path_are_recomputed(tmp_path, hf_folder):
    import torch
    from safetensors.torch import load_file, save_file
    d, out = tmp_path/'m', tmp_path/'out'; shutil.copytree(hf_folder, d)
    args = ['--model', d, '--method', 'magnitude', '--structure', '2:4', '--max-windows', '2', '--eval-corpora', 'stories', *folder]
    first = run(*args, '--out', tmp_path/'first')
    assert first.returncode == 0, first.stderr[-2000:]
    w = load_file(d/'model.safetensors'); k = next(k for k in w if 'up_proj' in k); w[k] = w[k] * 2
    save_file(w, d/'model.safetensors', metadata={'format': 'pt'}) # new weights, same path
    second = run(*args, '--out', tmp_path/'second')
    assert second.returncode == 0 and not any('reused' in l for l in rows(second.stdout))
    assert rows(first.stdout)[1].split()[3] != rows(second.stdout)[1].split()[3] # another perplexity
    assert {f.name for f in (tmp_path/'first').glob('*.json')} != {f.name for f in (tmp_path/'second').glob('*.json')}
    # and into the first folder: refused, the settings (the weights' fingerprint) differ
    refused(run(*args, '--out', tmp_path/'first'), 'already holds a different run', 'weights')
    moved = tmp_path/'elsewhere'/'m'; shutil.copytree(d, moved)   # the same weights in another folder: the same runs
    again = run(*[moved if a == d else a for a in args], '--out', tmp_path/'second')
    assert again.returncode == 0 and all('reused from' in l for l in rows(again.stdout)), again.stderr[-2000:]

def test_clone_moved_reuses_and_altered_corpus_recomputes(tmp_path):
    "The data found in another folder (a moved clone) is the same run; another stories file is another evaluation."
    from wanda_nb.data import find_file
    out, data = tmp_path/'out', tmp_path/'data'; data.mkdir()
    assert run(*small, '--out', out).returncode == 0
    shutil.copy(find_file('stories260K_samples.jsonl'), data/'stories260K_samples.jsonl')
    moved = run(*small, '--out', out, extra_env={'WANDA_NB_DATA': str(data)})
    assert moved.returncode == 0 and all('reused from' in l for l in rows(moved.stdout)), moved.stdout + moved.stderr[-2000:]
    lines = (data/'stories260K_samples.jsonl').read_text().splitlines()
    (data/'stories260K_samples.jsonl').write_text('\n'.join(lines[::-1]) + '\n')
    altered = run(*small, '--out', tmp_path/'out2', extra_env={'WANDA_NB_DATA': str(data)})
    assert altered.returncode == 0 and not any('reused' in l for l in rows(altered.stdout))
    assert not {f.name for f in out.glob('*.json')} & {f.name for f in (tmp_path/'out2').glob('*.json')}
    refused(run(*small, '--out', out, extra_env={'WANDA_NB_DATA': str(data)}), 'already holds a different run', 'corpora')

def test_hub_model_is_fingerprinted_by_its_revision(tmp_path, hf_folder):
    "A hub model (here from a local Hugging Face cache, offline) is its revision: a new commit is a new model."
    hub = tmp_path/'hub'/'models--fake--stories'
    def commit(c):
        shutil.copytree(hf_folder, hub/'snapshots'/c); (hub/'refs').mkdir(exist_ok=True); (hub/'refs'/'main').write_text(c)
    commit('a' * 40)
    args = ['--model', 'fake/stories', *small, *folder]
    cache = {'HF_HUB_CACHE': str(tmp_path/'hub')}
    r = run(*args, '--out', tmp_path/'out', extra_env=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(next((tmp_path/'out').glob('*.json')).read_text())
    assert rec['weights'] == 'hub:fake/stories@' + 'a' * 40 and rec['model'] == 'fake/stories'
    commit('b' * 40) # the hub moved on: the same name is another model
    refused(run(*args, '--out', tmp_path/'out', extra_env=cache), 'already holds a different run', 'weights')

# --- bad input: one line on stderr, exit 2, nothing written, before any weights load ------------------------------------

BAD = {
    'batch-size 0': (['--batch-size', '0'], ['--batch-size must be a positive integer']),
    'batch-size x': (['--batch-size', 'x'], ["argument --batch-size: invalid int value: 'x'"]),
    'nsamples 0': (['--nsamples', '0'], ['--nsamples must be an integer >= 1, got 0']),
    'seqlen 0': (['--seqlen', '0'], ['--seqlen must be an integer >= 1, got 0']),
    'eval-seqlen 0': (['--eval-seqlen', '0'], ['--eval-seqlen must be an integer >= 2, got 0']),
    'max-windows -5': (['--max-windows', '-5'], ['--max-windows must be -1']),
    'limit 0': (['--eval', 'zeroshot', '--limit', '0'], ['--limit must be a positive integer']),
    'device cuda': (['--device', 'cuda'], ['--device cuda: this torch', 'sees no CUDA device', 'use --device cpu']),
    'device bogus': (['--device', 'tpu9'], ["--device 'tpu9' is not a device"]),
    'dtype': (['--dtype', 'float64'], ['--dtype must be float32, bfloat16 or float16']),
    'width 2:3': (['--structure', '2:3'], ["--structure 2:3 needs every linear's input width divisible by 3", 'choose M among the divisors of 4']),
    'structure 4:2': (['--structure', '4:2'], ['--structure: ']),
    'sparsity 1.2': (['--sparsity', '1.2'], ['--sparsity 1.2 is outside [0, 1)']),
    'sparsity abc': (['--sparsity', 'abc'], ['--sparsity takes comma-separated numbers']),
    'method': (['--method', 'obs'], ["--method: unknown method 'obs'"]),
    'eval': (['--eval', 'bleu'], ["--eval: unknown evaluation 'bleu'"]),
    'tasks': (['--eval', 'zeroshot', '--tasks', 'hellaswagg'], ["--tasks: unknown zero-shot task(s) ['hellaswagg']"]),
    'calib': (['--calib', 'wiki'], ["--calib: unknown corpus 'wiki'"]),
    'calib-split': (['--calib', 'c4', '--calib-split', 'test'], ["--calib-split 'test': corpus c4 has the splits train, validation"]),
    'eval-corpora': (['--eval-corpora', 'stories,wiki'], ["--eval-corpora: unknown corpus 'wiki'"]),
    'sampler': (['--sampler', 'random'], ["--sampler must be 'official' or 'concat'"]),
    'context': (['--seqlen', '1024'], ["--seqlen 1024 is longer than the model's context (512 tokens): pass --seqlen <= 512"]),
    'allocation owl with 2:4': (['--allocation', 'owl'], ['--allocation owl: N:M (2:4) fixes', 'use --allocation uniform']),
    'allocation global with wanda': (['--allocation', 'global', '--structure', 'unstructured'], ['--allocation global ranks all layers together']),
    'allocation bogus': (['--allocation', 'even'], ["--allocation 'even': choose from uniform, owl, global"]),
    'options': (['--options', 'b=1'], ["--options ['b'] belong to none of the methods"]),
    'options syntax': (['--method', 'ria', '--options', 'a'], ['--options takes key=value pairs']),
    'save with several runs': (['--save', 'x'], ['--save writes one pruned model, but 4 runs are asked for']),
    'missing folder': (['--model', './no/such/model'], ['--model ./no/such/model: no such folder']),
    'unknown model name': (['--model', 'nosuchmodel'], ["--model nosuchmodel: Cannot load model 'nosuchmodel'"]),
    'hub id not cached': (['--model', 'nobody/no-such-model'], ['--model nobody/no-such-model: cannot read its configuration',
                                                                 'not in the Hugging Face cache']),
    'quant spec': (['--quant', 'int3x'], ["--quant: cannot read quantization spec 'int3x'"]),
    'quant group': (['--quant', 'int4-g128', '--structure', 'unstructured'], ['--quant int4-g128: group size 128 does not divide d_in=64']),
    'quant order': (['--quant', 'int4', '--quant-order', 'sideways'], ["--quant-order 'sideways': choose after, before or joint"]),
    'quant joint': (['--quant', 'int4', '--quant-order', 'joint'], ['--quant-order joint is SparseGPT and GPTQ in one pass']),
    'quant method': (['--quant', 'int4', '--quant-method', 'awq'], ["--quant-method 'awq': choose gptq or rtn"]),
    'quant-order alone': (['--quant-order', 'before'], ['--quant-order is given without --quant']),
    'recover budget': (['--recover', 'lora'], ['--recover needs a budget: pass --recover-tokens']),
    'recover kind': (['--recover', 'dance', '--recover-tokens', '100'], ["--recover dance: unknown recovery 'dance'"]),
    'recover tokens': (['--recover', 'masked', '--recover-tokens', '-5'], ['--recover masked: tokens (the training budget) must be a positive int']),
    'recover data': (['--recover', 'masked', '--recover-tokens', '100', '--recover-data', 'wikitext2:test'], ['--recover-data wikitext2:test: wikitext2:test is an evaluation split']),
    'recover-tokens alone': (['--recover-tokens', '100'], ['--recover-tokens is given without --recover']),
}

@pytest.mark.parametrize('case', BAD)
def test_bad_argument(case, tmp_path):
    args, needles = BAD[case]
    refused(run(*args, '--out', tmp_path/'out'), *needles)
    assert not (tmp_path/'out').exists() and not Path('x').exists()

def test_quantize_after_pruning_and_recover_are_recorded(tmp_path):
    out = tmp_path/'run'
    r = run(*small, '--structure', 'unstructured', '--quant', 'int8', '--quant-method', 'rtn', '--out', out)
    assert r.returncode == 0, r.stderr[-2000:]
    q = [json.loads(f.read_text()) for f in out.glob('*.json')]
    q = next(x for x in q if x['method'] == 'wanda')
    assert [s['name'] for s in q['extra']['steps']] == ['quant', 'bits'] and q['extra']['steps'][0]['spec'] == 'int8'
    assert q['metrics']['bits']['bits_per_weight'] < 16 and q['metrics']['quant']
    r = run(*small, '--structure', 'unstructured', '--recover', 'masked', '--recover-tokens', '512', '--out', tmp_path/'rec')
    assert r.returncode == 0, r.stderr[-2000:]
    rec = next(x for x in (json.loads(f.read_text()) for f in (tmp_path/'rec').glob('*.json')) if x['method'] == 'wanda')
    assert rec['extra']['steps'][0]['name'] == 'recover' and rec['extra']['steps'][0]['tokens'] == 512
    assert rec['metrics']['recover']['tokens_seen'] >= 512 and 'before' in rec['metrics']['recover']

def test_out_is_a_file_and_save_exists(tmp_path):
    f = tmp_path/'file'; f.write_text('not a folder')
    refused(run(*small, '--out', f), f'--out {f} is a file: pass a folder')
    refused(run(*small, '--out', f/'sub'), f'--out {f/"sub"}: {f} is a file')
    (tmp_path/'saved').mkdir()
    refused(run(*small, '--save', tmp_path/'saved', '--out', tmp_path/'out'), '--save', 'exists: choose another folder')
    assert not (tmp_path/'out').exists()

FOLDERS = {
    'corrupt config.json': (lambda d: (d/'config.json').write_text((d/'config.json').read_text()[:-20]), ['config.json is not valid JSON']),
    'no config.json': (lambda d: (d/'config.json').unlink(), ['no config.json in this folder']),
    'missing tokenizer files': (lambda d: (d/'tokenizer.json').unlink(), ['no tokenizer files', "copy the model's tokenizer files"]),
    'truncated safetensors': (lambda d: (d/'model.safetensors').write_bytes((d/'model.safetensors').read_bytes()[:-1000]),
                              ['model.safetensors is truncated or damaged', 'download it again']),
    'no weights': (lambda d: (d/'model.safetensors').unlink(), ['no weight files']),
    'unknown model_type': (lambda d: (d/'config.json').write_text(json.dumps(json.loads((d/'config.json').read_text()) | {'model_type': 'nosuchlm'})),
                           ['--model', 'cannot read its configuration']),
}

@pytest.mark.parametrize('case', FOLDERS)
def test_bad_model_folder(case, tmp_path, hf_folder):
    how, needles = FOLDERS[case]
    d = damaged(hf_folder, tmp_path, how)
    refused(run('--model', d, *small, *folder, '--out', tmp_path/'out'), f'--model {d}', *needles)
    assert not (tmp_path/'out').exists()

def test_token_ids_beyond_the_vocabulary(tmp_path):
    "A tokenizer whose ids the model has no embedding for (the model's embedding cut to 100 rows)."
    from wanda_nb.models import load_model
    m, tok = load_model('stories260K'); m.resize_token_embeddings(100)
    d = tmp_path/'m'; m.save_pretrained(d); tok.save_pretrained(d)
    refused(run('--model', d, *small, *folder, '--out', tmp_path/'out'), 'embedding has 100 rows', 'does not belong to this model')
    assert not (tmp_path/'out').exists()

def test_nonfinite_weights_refused_before_pruning(tmp_path, hf_folder):
    from safetensors.torch import load_file, save_file
    d = tmp_path/'m'; shutil.copytree(hf_folder, d)
    w = load_file(d/'model.safetensors'); w['model.layers.2.mlp.up_proj.weight'][3, 4] = float('nan')
    save_file(w, d/'model.safetensors', metadata={'format': 'pt'})
    refused(run('--model', d, *small, *folder, '--out', tmp_path/'out'), 'model.layers.2.mlp.up_proj.weight holds 1 NaN/inf values')
    assert not list((tmp_path/'out').glob('*.json'))

def test_float16_overflow_refused_before_pruning(tmp_path, hf_folder):
    "Finite weights whose activations overflow in float16: refused before pruning, the first module named."
    from safetensors.torch import load_file, save_file
    d = tmp_path/'m'; shutil.copytree(hf_folder, d)
    w = load_file(d/'model.safetensors'); w['model.layers.1.mlp.up_proj.weight'] *= 3e4
    save_file(w, d/'model.safetensors', metadata={'format': 'pt'})
    refused(run('--model', d, *small, *folder, '--dtype', 'float16', '--out', tmp_path/'out'),
            'activations are not finite: the output of model.layers.1.mlp.up_proj is NaN/inf', 'float16 overflows here')
    assert not list((tmp_path/'out').glob('*.json'))

def test_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    "Bars over blocks, windows and tasks go to stderr when it is a terminal, and not with --quiet."
    import io
    from wanda_nb.cli import cli
    class Tty(io.StringIO):
        def isatty(self): return True
    for quiet in (False, True):
        monkeypatch.setattr(sys, 'stderr', err := Tty())
        cli([*small, '--out', str(tmp_path/f'o{quiet}'), *(['--quiet'] if quiet else [])])
        bars = err.getvalue()
        assert ('wanda 2:4 50%' in bars and 'KL stories' in bars and 'dense stories' in bars) != quiet, bars[-500:]
    out = capsys.readouterr().out
    assert out.count('method') == 2 and out.startswith('model stories260K')

def test_debug_shows_the_traceback(tmp_path):
    r = run('--batch-size', '0', '--debug', '--out', tmp_path/'out')
    assert r.returncode != 0 and 'Traceback' in r.stderr and '--batch-size must be a positive integer' in r.stderr

# --- the console itself ---------------------------------------------------------------------------------------------------

def test_help_is_fast_and_explains_every_flag():
    t = time.time(); r = run('--help'); dt = time.time() - t
    assert r.returncode == 0 and dt < 2, dt
    from wanda_nb.cli import _parser
    assert not [a.dest for a in _parser()._actions if not a.help]
    for flag in ('--allocation', '--options', '--wait', '--quiet', '--debug', '--save'): assert flag in r.stdout

def test_concurrent_runs_refuse_or_wait(tmp_path):
    out = tmp_path/'out'
    hold = ("import sys, time; from wanda_nb.records import lock_folder\n"
            "with lock_folder(sys.argv[1]): print('held', flush=True); time.sleep(float(sys.argv[2]))")
    p = subprocess.Popen([sys.executable, '-c', hold, str(out), '600'], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == 'held'
        refused(run(*small, '--out', out), f'{out} is in use by another run (pid {p.pid}', '--wait')
        assert not list(out.glob('*.json'))
        w = subprocess.Popen([str(exe), *small, '--wait', '--out', str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
        line = ''
        while 'waiting for it' not in line: # it reached the lock and waits
            line = w.stderr.readline(); assert line or w.poll() is None, 'the waiting run ended without waiting'
    finally: p.terminate(); p.wait(timeout=60) # the holder goes away (its lock with it)
    so, se = w.communicate(timeout=600)
    assert w.returncode == 0 and len(list(out.glob('*.json'))) == 2, se[-2000:]

def test_owl_run_records_what_each_block_got(tmp_path):
    r = run(*small, '--structure', 'unstructured', '--sparsity', '0.7', '--allocation', 'owl', '--out', tmp_path/'owl')
    assert r.returncode == 0, r.stderr[-2000:]
    w = next(x for x in (json.loads(f.read_text()) for f in (tmp_path/'owl').glob('*.json')) if x['method'] == 'wanda')
    a = w['metrics']['allocation']
    assert len(a['block_sparsity']) == len(a['outlier_ratios']) == 5
    assert abs(sum(a['block_sparsity']) / 5 - 0.7) < 1e-6 and a['block_sparsity'][0] < 0.7 < a['block_sparsity'][-1]
