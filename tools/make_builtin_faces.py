"""Write a2v/data/builtin_faces.json: MTCNN's answer (boxes, probabilities, five landmarks) for the built-in face photos.

`a2v.sample_data.load_faces` uses it instead of running MTCNN when a photo's hash matches, so the sample data of a new
run does not start MTCNN. Run it again when the built-in photos or the detector change:

    .venv/bin/python tools/make_builtin_faces.py
"""
import hashlib, json
from a2v.core import atomic_write_json
from a2v.sample_data import BUILTIN_FACES, builtin_faces, detect_face_landmarks

def main():
    out = {}
    for name, im in builtin_faces().items():
        key = hashlib.sha1(im.tobytes() + str(im.shape).encode()).hexdigest()[:16]      # (the key `load_faces` computes)
        out[name] = dict(name=name, source=f'builtin:{name}', hash=key, size=[im.shape[1], im.shape[0]], faces=detect_face_landmarks(im))
    atomic_write_json(BUILTIN_FACES, out)
    print(f'wrote {BUILTIN_FACES}: ' + ', '.join(f"{n} ({len(r['faces'])} face(s))" for n, r in out.items()))

if __name__ == '__main__': main()
