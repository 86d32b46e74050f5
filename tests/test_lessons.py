"""Prose that cannot drift: the a2v names the notebooks and the README cite exist, and the lessons keep their shape.

- Every `a2v.module` and `a2v.module.name` written in the notebooks (prose and code comments) or the README must import.
- Every backticked name in the prose that reads as a Python name of ours (`snake_case`, `snake_case()`, `CamelCase`,
  `module.name`) must be a name in a2v's code, a config key of a preset, or one of the outside names listed below.
"""
import importlib, io, json, re, tokenize
from functools import lru_cache
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT/'a2v').glob('*.py') if not p.stem.startswith('_'))

# Names from other projects that the lessons rightly cite: torch, transformers, NVIDIA's StyleGAN3 and its pickles,
# MTCNN, PyAV, nbdev, papermill, MediaPipe. Anything else backticked that looks like ours must be ours.
OUTSIDE = set('''
AdaptiveAvgPool1d BackboneEncoder GradualStyleBlock EqualLinear Wav2Vec2Model Wav2Vec2Config Wav2Vec2Encoder
Wav2Vec2FeatureExtractor DataLoader DistributedDataParallel DistributedSampler LBFGS ReduceLROnPlateau
G_ema num_ws w_dim z_dim c_dim img_resolution img_channels w_avg truncation_psi noise_mode mapping_kwargs channel_base
channel_max conv_kernel num_layers use_radial_filters lrelu_upsampling magnitude_ema magnitude_ema_beta conv_clamp
filter_size margin_size first_cutoff first_stopband last_stopband_rel num_critical output_scale
sampling_rate upfirdn2d filtered_lrelu bias_act persistent_class load_network_pkl gen_images torch_utils dnnlib
state_dict load_state_dict weights_only save_pretrained from_pretrained last_hidden_state hidden_states
attention_mask input_values num_hidden_layers num_attention_heads intermediate_size hidden_size
num_conv_pos_embeddings num_conv_pos_embedding_groups conv_dim
nbdev_export nbdev_test nbdev_clean default_exp execute_notebook injected_parameters
torch_dtype channels_last set_num_threads manual_seed no_grad inference_mode grad_fn requires_grad
face_landmark input_1 conv2d_21 conv2d_31 select_largest keep_all min_face_size post_process
ToRGB python_speech_features syncnet_v2 all_gather all_reduce init_process_group model_type
'''.split())

FILE_SUFFIXES = {'py', 'json', 'jsonl', 'md', 'ipynb', 'wav', 'mp4', 'png', 'safetensors', 'pkl', 'pt', 'txt', 'log'}

def _comments(src:str) -> str:
    "The comments of a code cell (the prose inside code)."
    try: return '\n'.join(t.string for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT)
    except (tokenize.TokenError, SyntaxError, IndentationError): return ''

def _sources(comments:bool=False):
    "(where, text) of each prose block: notebooks' markdown cells (and code cells' comments) and the README."
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            src = ''.join(c['source'])
            if c['cell_type'] == 'markdown': yield f'nbs/{nb.name} cell {i}', src
            elif comments and c['cell_type'] == 'code': yield f'nbs/{nb.name} cell {i}', _comments(src)
    yield 'README.md', (ROOT/'README.md').read_text()

def _code_texts():
    "The repo's code: the package, the notebooks' code cells, tests and tools."
    for p in [*(ROOT/'a2v').glob('*.py'), *(ROOT/'tests').glob('*.py'), *(ROOT/'tools').glob('*.py')]:
        if p.stem not in ('_modidx', Path(__file__).stem): yield p.read_text()   # not this file: its probes are stale
    for nb in (ROOT/'nbs').glob('*.ipynb'):
        for c in json.loads(nb.read_text())['cells']:
            if c['cell_type'] == 'code': yield '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.startswith(('%', '!')))

@lru_cache
def _our_names() -> frozenset:
    "Every Python name in the repo's code, every word of its strings (status reasons, json keys), every config key."
    names = set(MODULES)
    for text in _code_texts():
        try: tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, SyntaxError, IndentationError): tokens = []
        names |= {t.string for t in tokens if t.type == tokenize.NAME}
        names |= {w for t in tokens if t.type == tokenize.STRING for w in re.findall(r'[A-Za-z_]\w*', t.string)}
    from a2v.core import get_config, flatten_config
    for preset in ('tiny', 'paper'):
        for key in flatten_config(get_config(preset)): names |= {key, *key.split('.')}
    return frozenset(names)

def _resolve(dotted:str):
    "Import `a2v.m` and walk `.name...`; the part that failed, or None."
    parts = dotted.split('.')
    try: obj = importlib.import_module('.'.join(parts[:2]))
    except ImportError: return '.'.join(parts[:2])
    for k in parts[2:]:
        if not hasattr(obj, k): return dotted
        obj = getattr(obj, k)
    return None

def stale_module_names(sources) -> list:
    "Each `a2v.module(.name)` in `sources` that does not import, as 'where: ref'."
    bad = []
    for where, text in sources:
        for m in re.finditer(r'(?<![\w./-])a2v\.[a-z_]\w*(?:\.[A-Za-z_]\w*)*', text):
            ref = m.group(0).rstrip('.')
            if not ref.endswith(('.py', '.md', '.ipynb')) and _resolve(ref) is not None: bad.append(f'{where}: {ref}')
    return bad

_NAME = re.compile(r'`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\([^`]*\))?`')

def _looks_like_ours(name:str) -> bool:
    "snake_case with an underscore, CamelCase with two capitals, or dotted below one of our modules."
    first, last = name.split('.')[0], name.split('.')[-1]
    if '.' in name: return first in MODULES and last not in FILE_SUFFIXES
    return bool(re.fullmatch(r'_?[a-z][a-z0-9]*(_[a-z0-9]+)+', name) or re.fullmatch(r'_?[A-Z][a-z0-9]+(?:[A-Z0-9][a-z0-9]*)+', name))

def stale_backticked_names(sources) -> list:
    "Each backticked name in `sources` that reads as ours but is not a2v's, a preset's config key, or `OUTSIDE`."
    ours, bad = _our_names(), []
    for where, text in sources:
        for m in _NAME.finditer(text):
            name = m.group(1)
            if not _looks_like_ours(name) or name in OUTSIDE or name in ours: continue
            if '.' in name and _resolve('a2v.' + name) is None: continue          # module.attribute
            bad.append(f'{where}: `{m.group(0)[1:-1]}`')
    return sorted(set(bad))

def test_every_a2v_module_name_cited_exists():
    bad = stale_module_names(_sources(comments=True))
    assert not bad, 'prose cites a2v names that do not exist:\n' + '\n'.join(bad)

def test_every_backticked_name_that_looks_like_ours_exists():
    bad = stale_backticked_names(_sources())
    assert not bad, "prose names things a2v's code does not have:\n" + '\n'.join(bad)

@pytest.mark.parametrize('text, check, stale', [
    ('call `no_such_helper()` first', stale_backticked_names, '`no_such_helper()`'),
    ('`invert.no_such_key` sets it', stale_backticked_names, '`invert.no_such_key`'),
    ('`NoSuchRenderer` does it', stale_backticked_names, '`NoSuchRenderer`'),
    ('see a2v.render.no_such_thing.', stale_module_names, 'a2v.render.no_such_thing'),
    ('see a2v.no_such_module', stale_module_names, 'a2v.no_such_module')])
def test_the_checks_see_a_stale_name(text, check, stale):
    "Both checks fail on a name that does not exist, and pass on names that do."
    assert check([('probe', text)]) == [f'probe: {stale}']
    assert check([('probe', '`run_stage()`, `invert.steps_first`, `Embed2Lat`, a2v.render.run_stage, `ws`')]) == []

# ---- the shape of a lesson: short code cells, prose that is not a log of measurements (those go to RESULTS.md)
def _cells(kind:str):
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        yield nb.name, [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == kind]

def test_no_code_cell_is_60_lines_or_more():
    long = [f'{nb}: a code cell of {n} lines ({src.splitlines()[1][:60] if src.count(chr(10)) else src[:60]!r} ...)'
            for nb, cells in _cells('code') for src in cells if (n := src.count('\n') + 1) >= 60]
    assert not long, 'split these by concern, one definition per cell:\n' + '\n'.join(long)

_DECIMAL = re.compile(r'(?<![\w.])\d+\.\d+|\d+\s?%')

def measurement_share(cells:list) -> float:
    "The share of a notebook's prose in markdown cells that carry 8 or more decimal numbers (tables of trials)."
    total = sum(map(len, cells))
    return sum(len(m) for m in cells if len(_DECIMAL.findall(m)) >= 8) / max(total, 1)

def test_no_lesson_reads_as_a_log():
    logs = {nb: round(s, 2) for nb, cells in _cells('markdown') if (s := measurement_share(cells)) > 0.25}
    assert not logs, f'prose mostly measurement tables (move them to RESULTS.md, keep the decision): {logs}'
    assert measurement_share(['| a | 1.5 | 2.5 | 3.5 | 4.5 | 5.5 | 6.5 | 7.5 | 8.5 |', 'a decision']) > 0.25

def test_cell_ids_are_unique():
    "Every notebook's cells have distinct ids (a repeated id is renamed at random by the tools, and the export's `#id` markers drift)."
    import collections
    dup = {p.name: [i for i, n in collections.Counter(c.get('id') for c in json.loads(p.read_text())['cells']).items() if n > 1]
           for p in sorted((ROOT/'nbs').glob('*.ipynb'))}
    assert not {k: v for k, v in dup.items() if v}, dup
