"Zero-shot module: task-name errors and the shape of every offline conversion (no model is run; < 30 s)."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import pytest
from wanda_nb.zeroshot import TASKS, check_tasks, task_rows, zeroshot, offline_task_yaml

def test_unknown_task_is_one_clear_error():
    with pytest.raises(ValueError, match='valid tasks are boolq, rte, hellaswag'): check_tasks(['boolq', 'mmlu'])
    with pytest.raises(ValueError, match='valid tasks are'): zeroshot(None, None, tasks=['arc'])  # fails before any model use
    with pytest.raises(ValueError, match='valid tasks are'): task_rows('ARC-Easy')

FIELDS = dict(boolq={'question', 'passage', 'idx', 'label'}, rte={'sentence1', 'sentence2', 'label', 'idx'},
              hellaswag={'ind', 'activity_label', 'ctx_a', 'ctx_b', 'ctx', 'endings', 'source_id', 'split', 'split_type', 'label'},
              winogrande={'sentence', 'option1', 'option2', 'answer'}, arc_easy={'id', 'question', 'choices', 'answerKey'},
              arc_challenge={'id', 'question', 'choices', 'answerKey'}, openbookqa={'id', 'question_stem', 'choices', 'answerKey'},
              piqa={'goal', 'sol1', 'sol2', 'label'})
SIZES = dict(boolq=3270, rte=277, hellaswag=1000, winogrande=1267, arc_easy=2376, arc_challenge=1172, openbookqa=500, piqa=1838)

@pytest.mark.parametrize('task', TASKS)
def test_conversion_shapes(task):
    rows = task_rows(task)
    assert len(rows) == SIZES[task]
    assert all(set(r) == FIELDS[task] for r in rows)
    if task in ('boolq', 'rte', 'piqa'): assert {r['label'] for r in rows} == {0, 1}
    if task == 'hellaswag': assert all(r['label'] in '0123' and len(r['endings']) == 4 for r in rows)
    if task == 'winogrande': assert all(r['answer'] in ('1', '2') and r['sentence'].count('_') >= 1 for r in rows)
    if 'choices' in FIELDS[task]:
        for r in rows:
            assert len(r['choices']['text']) == len(r['choices']['label']) >= 3
            assert r['answerKey'] in r['choices']['label']

def test_yaml_changes_only_the_data_source():
    import yaml
    cfg = yaml.safe_load(offline_task_yaml('arc_easy', '/x/test.jsonl'))
    assert cfg['include'].endswith('lm_eval/tasks/arc/arc_easy.yaml')
    assert set(cfg) == {'include', 'task', 'dataset_path', 'dataset_name', 'dataset_kwargs', 'training_split', 'validation_split', 'test_split'}
    assert cfg['dataset_kwargs'] == {'data_files': {'test': '/x/test.jsonl'}}
