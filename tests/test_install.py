"""A normal (non-editable) install carries the package data and lists the shipped device."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_in_a_fresh_venv_lists_the_measured_device(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(ROOT), "-w", str(wheels)],
                   check=True, capture_output=True)
    env_dir = tmp_path / "venv"
    # the system's packages (torch, numpy, ...) are visible; nasloop itself is not on the
    # path of the fresh venv until the wheel is installed into it
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    wheel = next(wheels.glob("nasloop-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", "--force-reinstall", str(wheel)],
                   check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "NASLOOP_DATA"}
    env["PYTHONPATH"] = ""
    where = subprocess.run([str(py), "-c", "import nasloop; print(nasloop.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert str(env_dir) in where.stdout, where.stdout  # the wheel, not the source tree
    out = subprocess.run([str(py), "-m", "nasloop", "devices", "--json"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {d["name"]: d for d in json.loads(out.stdout)}
    assert "measured_cpu_epyc_1t" in rows
    # the deployable whole-space table ships with its sidecar: one timing per network
    assert rows["measured_cpu_epyc_1t_deployable"]["cells"] == 6466
    assert "deployable network" in rows["measured_cpu_epyc_1t_deployable"]["description"]
    assert rows["measured_gpu_h100_graph"]["cells"] == 6466  # the GPU table, timed as a graph
    assert "CUDA graph" in rows["measured_gpu_h100_graph"]["description"]
