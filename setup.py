"""Packaging for mmbodvcl.

The install *order* (torch, then mmcv compiled against it without build
isolation) lives in the Makefile only; this file declares what we need.
"""
from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open('mmbodvcl/version.py', encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmbodvcl',
    version=read_version(),
    description='BOD-VCL (Bi-level Optimization with Decoupling for Video '
    'Contrastive Learning) for MMAction2',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    license_files=['LICENSE'],
    packages=find_packages(include=['mmbodvcl', 'mmbodvcl.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.0',
        'numpy',
        'scipy',
        'mmengine==0.10.7',
        # mmcv must be the full build with compiled ops (AVA needs mmcv.ops);
        # mmaction2 1.2.0 and mmdet 3.3.0 both assert mmcv < 2.2.0.
        'mmcv>=2.0.0,<2.2.0',
        'mmaction2==1.2.0',
        'mmdet==3.3.0',
        'decord>=0.6.0',
        'importlib_metadata',
        'matplotlib',
        # mmcv/mmengine import pkg_resources, which setuptools 82 removed.
        'setuptools>=77,<82',
    ],
    extras_require={
        # betty-ml: hypergradients cross-checked in the tests; pytest-xdist
        # runs the suite on every core (`make test`); flake8 is the linter
        # of `make lint` and .pre-commit-config.yaml.
        'tests': ['pytest', 'pytest-xdist', 'betty-ml', 'flake8'],
        'betty': ['betty-ml'],
    },
    zip_safe=False,
)
