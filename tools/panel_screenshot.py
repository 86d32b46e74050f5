"""figures/panel.png: the render panel's page (`a2v app`) after a render, as a person sees it; run by hand, once.

    .venv/bin/python tools/panel_screenshot.py [RUN] [OUT]     (defaults: runs/demo, figures/panel.png; after `make demo`)

It drives the page exactly as tests/test_app.py does (same helpers): a built-in photo, the run's held-out sentence,
Render; then both videos are shown at half their length and the page is cropped to what it draws."""
import sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tests'))
from test_app import App, browser, open_panel, choose, render, css

SEEK_JS = """const done = arguments[arguments.length - 1], vs = [...document.querySelectorAll('.a2v-video, .a2v-side')];
Promise.all(vs.map(v => new Promise(ok => { const go = () => { v.addEventListener('seeked', ok, {once: true});
    v.currentTime = v.duration / 2; }; v.readyState >= 1 ? go() : v.addEventListener('loadedmetadata', go, {once: true}); })))
    .then(() => done(vs.length));"""

def main(run='runs/demo', out=ROOT/'figures'/'panel.png'):
    from PIL import Image, ImageChops
    with tempfile.TemporaryDirectory() as tmp, App(run, Path(tmp)/'tmp') as app:
        d = browser(Path(tmp)/'profile')
        try:
            open_panel(d, app.url)
            choose(d, 'photo', 'built-in: grace_hopper'); choose(d, 'speech', 'held-out: speech.wav')
            if render(d) != 'video': raise SystemExit(f"no video: {css(d, '.a2v-panel').text}")
            d.set_script_timeout(60); d.execute_async_script(SEEK_JS)
            d.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
            d.save_screenshot(str(Path(tmp)/'page.png'))
        finally: d.quit()
        img = Image.open(Path(tmp)/'page.png').convert('RGB')
        box = ImageChops.difference(img, Image.new('RGB', img.size, 'white')).getbbox()   # what the page draws
        img.crop((max(0, box[0] - 12), max(0, box[1] - 12), min(img.width, box[2] + 12), min(img.height, box[3] + 12))).save(out)
    print(f'wrote {out}')

if __name__ == '__main__': main(*sys.argv[1:])
