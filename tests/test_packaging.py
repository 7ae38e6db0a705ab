"""pyproject.toml: one import name. The wheel holds `smartanom` only (core/ and plugins/ are
mapped to `smartanom` and `smartanom.builtin`), and an installed wheel imports from itself."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_has_one_top_level_name_and_imports_from_itself(tmp_path):
    # Built from a clean copy, as from a fresh clone: a developer's leftover build/ or
    # *.egg-info (from `pip install -e`) can put into the wheel what pyproject.toml leaves out.
    clean = tmp_path / "source"
    shutil.copytree(ROOT, clean, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(clean)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("smartanom-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"smartanom"}
    # Every module of the repository is in the wheel: a subpackage missing from
    # pyproject's `packages` list would still import in an editable install.
    for folder, name in (("core", "smartanom"), ("plugins", "smartanom/builtin")):
        for source in (ROOT / folder).rglob("*.py"):
            assert f"{name}/{source.relative_to(ROOT / folder).as_posix()}" in names, f"{source.relative_to(ROOT)} is not in the wheel: add its package to pyproject.toml"
    assert "smartanom/static/dashboard.html" in names
    assert "smartanom/builtin/serial_arduino/arduino/smartanom_node/smartanom_node.ino" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "simulated = smartanom.builtin.simulated" in entry_points and "smartanom = smartanom.cli:main" in entry_points

    # Installed on its own (the hub's dependencies come from this environment), run from a
    # folder without the repository's core/ beside it: smartanom imports, core and plugins do not.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    probe = (
        "import importlib.util, sys, smartanom, smartanom.builtin.simulated, smartanom.cli;"
        "print(smartanom.__file__);"
        # This environment's editable install would supply a submodule missing from the wheel.
        "print(sorted(n for n, m in sys.modules.items() if n.startswith('smartanom') and not (getattr(m, '__file__', None) or sys.path[0]).startswith(sys.path[0])));"
        "print(importlib.util.find_spec('core'), importlib.util.find_spec('plugins'))"
    )
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first, outside, second = done.stdout.splitlines()
    assert first.startswith(str(target))
    assert outside == "[]"
    assert second == "None None"
