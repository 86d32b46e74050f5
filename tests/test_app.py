"""The panel as a person uses it (#34): `a2v app` serves it with Voilà on 127.0.0.1 for the micro run, and Debian's
headless chromium (selenium + chromium-driver: nothing is downloaded) chooses a built-in photo and a held-out speech,
clicks Render and watches the result play; a text file typed as the photo shows the one-line error and leaves no file.
Then the same panel in JupyterLab, its notebook cell run by hand (Shift+Enter), as `make lab` shows it.

`tools/panel_screenshot.py` drives the same page with these helpers to make `figures/panel.png`."""
import base64, io, os, socket, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
A2V = str(Path(sys.executable).parent/'a2v')
CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')   # Debian's chromium, chromium-driver
# Without the background-networking flags chromium stalls on a closed network; a fresh profile per browser.
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--window-size=1400,1000']

def free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class App:
    "`a2v app --run RUN --port P` in the background, its temporary files under `tmp` (TMPDIR); a context manager."
    def __init__(self, run, tmp, timeout:float=180.0):
        self.run, self.tmp, self.timeout, self.port = Path(run), Path(tmp), timeout, free_port()
        self.url = f'http://127.0.0.1:{self.port}/'
    def command(self) -> list: return [A2V, 'app', '--run', str(self.run), '--port', str(self.port)]
    def ready(self) -> bool: return self.url in self.log.read_text()      # `a2v app` prints it once the page answers
    def env(self) -> dict: return dict(os.environ, TMPDIR=str(self.tmp), PYTHONUNBUFFERED='1', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    def __enter__(self):
        self.tmp.mkdir(parents=True, exist_ok=True); self.log = self.tmp.parent/f'{type(self).__name__}-{self.port}.log'
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=self.env(), stdout=open(self.log, 'w'), stderr=subprocess.STDOUT)
        t0 = time.time()
        while not self.ready():
            if self.proc.poll() is not None or time.time() - t0 > self.timeout:
                self.stop(); raise RuntimeError(f'{self.command()[:3]} did not start:\n{self.log.read_text()[-3000:]}')
            time.sleep(0.3)
        return self
    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()                                          # SIGTERM: a2v stops Voilà and removes its notebook
            try: self.proc.wait(30)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
    def __exit__(self, *exc): self.stop()

class Lab(App):
    "JupyterLab on 127.0.0.1 (no token: this machine, this test only), its root a folder holding a notebook with the panel."
    def __init__(self, run, tmp, timeout:float=180.0):
        super().__init__(run, tmp, timeout)
        from a2v.render import app_notebook
        self.root = self.tmp.parent/'lab'; (self.root/'config').mkdir(parents=True, exist_ok=True)
        app_notebook(self.run, self.root/'panel.ipynb')
        self.url = f'http://127.0.0.1:{self.port}/lab/tree/panel.ipynb'
    def command(self) -> list:
        return [sys.executable, '-m', 'jupyterlab', '--no-browser', '--allow-root', f'--port={self.port}', '--ServerApp.ip=127.0.0.1',
                '--ServerApp.port_retries=0', '--IdentityProvider.token=', '--ServerApp.password=', f'--ServerApp.root_dir={self.root}',
                f'--LabApp.workspaces_dir={self.root/"config"}', f'--LabApp.user_settings_dir={self.root/"config"}']
    def env(self) -> dict:                                               # nothing read from or written to ~/.jupyter
        return dict(super().env(), JUPYTER_CONFIG_DIR=str(self.root/'config'), JUPYTER_RUNTIME_DIR=str(self.root/'config'/'runtime'))
    def ready(self) -> bool:
        with socket.socket() as s: return s.connect_ex(('127.0.0.1', self.port)) == 0

def browser(profile):
    "Headless Debian chromium through chromium-driver (Selenium Manager is never asked to fetch anything)."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    os.environ['SE_OFFLINE'] = 'true'
    o = webdriver.ChromeOptions(); o.binary_location = str(CHROMIUM)
    for f in FLAGS + [f'--user-data-dir={profile}']: o.add_argument(f)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=o)

def css(d, sel): return d.find_element('css selector', sel)

def wait_for(what, timeout:float, every:float=0.2):
    "Poll `what()` until it returns something true; its last value, or TimeoutError."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if (v := what()): return v
        time.sleep(every)
    raise TimeoutError(f'waited {timeout:.0f} s')

def open_panel(d, url, timeout:float=180.0, lab:bool=False):
    "Load the page (unless the panel is open already); wait until its notebook has run (JupyterLab: run its cell) and Render is there."
    if d.current_url == url and d.find_elements('css selector', '.a2v-render'): return
    d.get(url)
    if lab:                                                              # a person's way: click the cell, Shift+Enter
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.common.exceptions import StaleElementReferenceException, NoSuchElementException
        def idle():
            try: return 'Idle' in d.find_element('css selector', '#jp-main-statusbar').text   # its kernel is up
            except (StaleElementReferenceException, NoSuchElementException): return False
        def click_cell():                                                # (Lab may draw the cell again meanwhile)
            try: d.find_element('css selector', '.jp-CodeCell .cm-content').click(); return True
            except (StaleElementReferenceException, NoSuchElementException): return False
        wait_for(idle, timeout); wait_for(click_cell, 30)
        ActionChains(d).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    wait_for(lambda: d.find_elements('css selector', '.a2v-render'), timeout)
    d.execute_script("""window.a2vSteps = []; window.a2vButton = [];      // every text the progress label shows, the button's states
        new MutationObserver(() => window.a2vSteps.push(document.querySelector('.a2v-step').textContent))
            .observe(document.querySelector('.a2v-step'), {subtree: true, childList: true, characterData: true});
        const b = document.querySelector('.a2v-render');
        new MutationObserver(() => window.a2vButton.push(b.disabled)).observe(b, {attributes: true, attributeFilter: ['disabled']});""")

def choose(d, widget, label=None) -> str:
    "Choose `label` in the panel's dropdown `widget` (None: leave it); the label chosen."
    from selenium.webdriver.support.ui import Select
    s = Select(css(d, f'.a2v-{widget} select'))
    if label is not None: s.select_by_visible_text(label)
    return s.first_selected_option.text

def type_path(d, widget, text):
    box = css(d, f'.a2v-{widget} input'); box.clear(); box.send_keys(text)

def render(d, timeout:float=300.0, clicks:int=1) -> str:
    "Click Render (`clicks` times at once); wait for a new result ('video') or error ('error'); what was shown before is marked old."
    d.execute_script("document.querySelectorAll('.a2v-video, .a2v-error').forEach(e => e.classList.add('a2v-old'))")
    if clicks == 1: css(d, '.a2v-render').click()
    else: d.execute_script("const b = document.querySelector('.a2v-render'); for (let i = 0; i < arguments[0]; i++) b.click()", clicks)
    new = lambda sel: d.find_elements('css selector', f'{sel}:not(.a2v-old)')
    return wait_for(lambda: 'video' if new('.a2v-video') else 'error' if new('.a2v-error') else None, timeout)

VIDEO_JS = """const done = arguments[arguments.length - 1], v = document.querySelector('.a2v-video');
const grab = () => { const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
    c.getContext('2d').drawImage(v, 0, 0); done([v.duration, c.toDataURL('image/png')]); };
const seek = () => { v.addEventListener('seeked', grab, {once: true}); v.currentTime = v.duration / 2; };
if (v.readyState >= 1) seek(); else v.addEventListener('loadedmetadata', seek, {once: true});"""

def video_frame(d) -> tuple[float, np.ndarray]:
    "The panel's video as the browser sees it: its duration (s) and the frame at half of it, drawn on a canvas (H, W, 3)."
    from PIL import Image
    d.set_script_timeout(60)
    duration, url = d.execute_async_script(VIDEO_JS)
    img = Image.open(io.BytesIO(base64.b64decode(url.split(',', 1)[1]))).convert('RGB')
    return duration, np.asarray(img)

def panel_dirs(tmp) -> list:
    return sorted(p.name for p in Path(tmp).glob('a2v-panel-*'))

# ------------------------------------------------------------------------------------------------------------------
def _browser_present():
    "The browser tests fail (never skip) without the browser: `make test` installs it, so a missing one is a broken set-up."
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), 'needs Debian chromium and chromium-driver: run `make sysdeps-test` (tools/sysdeps.sh --test)'

def needs_browser(f):
    import functools
    @functools.wraps(f)
    def run(*a, **k): _browser_present(); return f(*a, **k)
    return run

@pytest.fixture(scope='module')
def app(micro_run, tmp_path_factory):
    import voila, selenium                                     # (requirements.txt pins both: a missing one fails here)
    with App(micro_run[0], tmp_path_factory.mktemp('app')/'tmp') as a: yield a

@pytest.fixture(scope='module')
def driver(app, tmp_path_factory):
    _browser_present()
    d = browser(tmp_path_factory.mktemp('chromium-profile'))
    yield d
    d.quit()

@pytest.mark.slow
@needs_browser
def test_the_page_renders_a_talking_face(app, driver, tmp_path):
    from a2v.media import load_audio
    from a2v.metrics import mesh_opening
    t0 = time.time(); open_panel(driver, app.url); t_open = time.time() - t0
    defaults = (choose(driver, 'mode'), float(css(driver, '.a2v-magnify .widget-readout').text))
    assert defaults == ('paper', 2.0), defaults                          # the tiny run's own mode and ×magnify, not ×500
    choose(driver, 'photo', 'built-in: grace_hopper'); choose(driver, 'speech', 'held-out: speech.wav')
    t0 = time.time(); got = render(driver, clicks=2); t_render = time.time() - t0     # an impatient double click
    driver.save_screenshot(str(tmp_path/'panel.png'))
    assert got == 'video', css(driver, '.a2v-panel').text
    assert driver.execute_script('return window.a2vButton') == [True, False]   # disabled while it ran, free again after
    steps = driver.execute_script('return window.a2vSteps')
    assert any(s.startswith('inverting the photo: step') for s in steps) and any(s.startswith('synthesising the frames') for s in steps), steps
    seconds = len(load_audio(app.run/'data'/'heldout'/'speech.wav')) / 16000
    duration, frame = video_frame(driver)
    assert abs(duration - seconds) <= 0.2, (duration, seconds)
    assert frame.shape == (64, 64, 3) and frame.std() > 10                # not blank
    assert mesh_opening(frame[None])['face_score'][0] > 0.5              # and MediaPipe's face mesh finds a face in it
    assert "MediaPipe's face mesh" in css(driver, '.a2v-lipsync').text
    assert css(driver, '.a2v-download').get_attribute('href').startswith('data:video/mp4;base64,')
    assert driver.find_elements('css selector', '.a2v-side')
    assert len(panel_dirs(app.tmp)) == 1              # one render's files (two renders at once would leave two folders)
    print(f'page open {t_open:.1f} s, render {t_render:.1f} s, video {duration:.2f} s for {seconds:.2f} s of speech')

@pytest.mark.slow
@needs_browser
def test_a_text_file_as_the_photo_is_one_line_and_leaves_nothing(app, driver, tmp_path):
    notes = tmp_path/'notes.txt'; notes.write_text('not a photo\n')
    open_panel(driver, app.url)
    choose(driver, 'speech', 'held-out: speech.wav'); type_path(driver, 'photo-path', str(notes))
    assert render(driver, 120) == 'error'
    line = css(driver, '.a2v-error').text
    assert line == f'error: {notes}: not an image file PIL can read', line
    assert panel_dirs(app.tmp) == []                  # the error's folder, and the last render's (when the page rendered before)
    assert not driver.find_elements('css selector', '.a2v-video')
    driver.save_screenshot(str(tmp_path/'panel_error.png'))

@pytest.mark.slow
@needs_browser
def test_the_panel_in_jupyterlab(micro_run, driver, tmp_path):
    "The same panel in a JupyterLab notebook (what `make lab` shows in 18_render): a cell run by hand, a render that plays."
    from a2v.media import load_audio
    with Lab(micro_run[0], tmp_path/'tmp') as lab:
        t0 = time.time(); open_panel(driver, lab.url, lab=True); t_open = time.time() - t0
        assert choose(driver, 'mode') == 'paper' and float(css(driver, '.a2v-magnify .widget-readout').text) == 2.0
        choose(driver, 'photo', 'built-in: astronaut'); choose(driver, 'speech', 'held-out: speech.wav')
        t0 = time.time(); got = render(driver); t_render = time.time() - t0
        driver.save_screenshot(str(tmp_path/'lab.png'))
        assert got == 'video', css(driver, '.a2v-panel').text
        duration, frame = video_frame(driver)
        assert abs(duration - len(load_audio(micro_run[0]/'data'/'heldout'/'speech.wav')) / 16000) <= 0.2 and frame.std() > 10
    print(f'JupyterLab: notebook open and cell run {t_open:.1f} s, render {t_render:.1f} s')
