"""NVIDIA-structured StyleGAN3 pickles, built without any NVIDIA code: a test helper (not a test file).

A network snapshot of NVIDIA's training code is a pickle whose modules are `torch_utils.persistence` objects: calls of
its reconstruct hook with the class name, the module's state and the constructor's `init_kwargs`. We write the same
structure from our own `Generator`, so the loader is tested on the format without NVIDIA's code on the path."""
import collections, contextlib, pickle, sys, types

@contextlib.contextmanager
def _nvidia_module_names():
    "Temporarily provide `torch_utils.persistence` and `dnnlib.util` names so pickle can write NVIDIA's globals."
    tp, du = types.ModuleType('torch_utils.persistence'), types.ModuleType('dnnlib.util')
    def _reconstruct_persistent_obj(meta): raise AssertionError('a2v must never call this')
    _reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'
    _reconstruct_persistent_obj.__qualname__ = '_reconstruct_persistent_obj'
    tp._reconstruct_persistent_obj = _reconstruct_persistent_obj
    EasyDict = type('EasyDict', (dict,), {'__module__': 'dnnlib.util'})
    du.EasyDict = EasyDict
    new = {'torch_utils': types.ModuleType('torch_utils'), 'torch_utils.persistence': tp,
           'dnnlib': types.ModuleType('dnnlib'), 'dnnlib.util': du}
    old = {k: sys.modules.get(k) for k in new}
    sys.modules.update(new)
    try: yield tp._reconstruct_persistent_obj, EasyDict
    finally:
        for k, v in old.items():
            if v is None: sys.modules.pop(k, None)
            else: sys.modules[k] = v

class _Persistent:
    "Pickles like a `persistence.persistent_class` instance: a call of the reconstruct hook with (meta,)."
    def __init__(self, hook, class_name, state): self.hook, self.class_name, self.state = hook, class_name, state
    def __reduce__(self):
        return (self.hook, (dict(type='class', version=6, module_src='# source omitted in this test',
                                 class_name=self.class_name, state=self.state),))

def _as_persistent(mod, hook, init_kwargs=None):
    state = dict(mod.__dict__)
    state['_modules'] = collections.OrderedDict((k, _as_persistent(m, hook)) for k, m in mod._modules.items())
    state['_init_kwargs'] = init_kwargs or {}
    state.pop('arch', None)
    return _Persistent(hook, type(mod).__name__, state)

def write_nvidia_style_pickle(G, kwargs, path):
    "Write `G` as NVIDIA's training code pickles a network snapshot (G, G_ema, D, ...), with `kwargs` as init_kwargs."
    with _nvidia_module_names() as (hook, EasyDict):
        kw = EasyDict(kwargs); kw['mapping_kwargs'] = EasyDict(kw.get('mapping_kwargs', {}))
        data = dict(G=_as_persistent(G, hook, kw), G_ema=_as_persistent(G, hook, kw), D=None, augment_pipe=None,
                    training_set_kwargs=EasyDict(path='ffhq.zip', resolution=G.img_resolution))
        with open(path, 'wb') as f: pickle.dump(data, f)

