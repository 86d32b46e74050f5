"Package metadata, read from settings.ini (the nbdev 2 layout)."
from configparser import ConfigParser
from pathlib import Path
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent/'settings.ini', encoding='utf-8')
c = cfg['DEFAULT']
licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic = licenses[c['license']]
readme = Path(__file__).parent/'README.md'

setuptools.setup(
    name=c['lib_name'], version=c['version'], description=c['description'],
    keywords=c['keywords'].split(), license=lic[0],
    author=c['author'], author_email=c['author_email'],
    classifiers=[f"Development Status :: {c['status']} - Alpha", f"Intended Audience :: {c['audience']}",
                 f"License :: {lic[1]}", f"Natural Language :: {c['language']}",
                 'Programming Language :: Python :: 3.11'],
    url=f"https://github.com/{c['user']}/{c['repo']}",
    packages=setuptools.find_packages(include=['a2v', 'a2v.*']),
    include_package_data=True, package_data={'a2v': ['data/*']},
    install_requires=c['requirements'].split(),
    extras_require={'dev': c['dev_requirements'].split()},
    python_requires=f">={c['min_python']}",
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else c['description'],
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': c['console_scripts'].split(), 'nbdev': [f"{c['lib_path']}={c['lib_path']}._modidx:d"]},
)
