"""Packaging: the wheel installs into a fresh venv; the client never imports the workers."""

from __future__ import annotations

import ast
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import jobgate.client

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_into_a_fresh_venv_and_imports(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("jobgate-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[worker]"],
        check=True, capture_output=True, timeout=500,
    )  # fmt: skip
    probe = (
        "import jobgate.client, jobgate.workers.backends.local, jobgate.profiles, sys;"
        "print(jobgate.client.__file__);"
        "from jobgate.client import load_profile; print(load_profile('local').name)"
    )
    out = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert out[0].startswith(str(env_dir))
    assert out[1] == "local"
    help_text = subprocess.run(
        [str(env_dir / "bin" / "jobgate"), "--help"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "worker" in help_text
    assert "submit" in help_text


def test_client_source_never_imports_workers() -> None:
    for path in (ROOT / "client").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith("jobgate.workers"), f"{path} imports {name}"


def test_using_the_client_loads_no_worker_module() -> None:
    probe = (
        "import sys; from jobgate.client import Gateway, JobSpec;"
        "Gateway('redis://127.0.0.1:1/0').celery;"
        "import jobgate.client.cli;"
        "print([m for m in sys.modules if m.startswith('jobgate.workers') or m == 'psutil'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_every_exported_name_imports() -> None:
    for name in jobgate.client.__all__:
        assert getattr(jobgate.client, name) is not None


def test_a_missing_kubernetes_extra_is_named_with_its_install_command() -> None:
    """Without the `kubernetes` package (the extra), the backend says what to install."""
    code = (
        "import sys; sys.modules['kubernetes'] = None\n"
        "from jobgate.client.errors import ConfigurationError\n"
        "from jobgate.client.profile_schema import KubernetesProfile\n"
        "from jobgate.workers.backends import get_backend\n"
        "try:\n"
        "    get_backend(KubernetesProfile(name='k', backend='kubernetes'))\n"
        "except ConfigurationError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert "pip install 'jobgate[kubernetes]'" in out.stdout
