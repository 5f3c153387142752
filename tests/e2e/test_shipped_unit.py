"""The shipped systemd units, hardened and still able to run the appliance.

No systemd runs here, so what the sandbox does to the appliance is reproduced piece by piece: the hardening
directives are read from the unit and checked against the config's paths; ``systemd-analyze security
--offline=yes`` scores the unit; the install tree and $HOME are made read-only in a mount namespace of the
test's own (what ``ProtectSystem=strict`` and ``ProtectHome`` do) with the unit's environment; and the
system calls the unit's seccomp filter refuses are traced (``strace -f``) under a whole ``edge demo``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.app.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "firmware-config" / "systemd"
UNIT = SYSTEMD / "factory-edge@.service"
CHECK_UNIT = SYSTEMD / "factory-edge-config-check.service"


def directives(unit: Path, section: str = "Service") -> list[tuple[str, str]]:
    """(key, value) of every assignment in ``[section]``, in order (keys may repeat)."""
    out: list[tuple[str, str]] = []
    current = None
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and "=" in line:
            key, _, value = line.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def last(unit: Path, key: str) -> str | None:
    values = [v for k, v in directives(unit) if k == key]
    return values[-1] if values else None


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed here (Debian: apt-get install -y systemd strace)")
    return path


def test_the_unit_runs_unprivileged_in_a_read_only_system() -> None:
    for unit in (UNIT, CHECK_UNIT):
        assert last(unit, "User") == "factory-edge" or last(unit, "DynamicUser") == "yes", unit
        assert last(unit, "ProtectSystem") == "strict"
        assert last(unit, "NoNewPrivileges") == "yes"
        assert last(unit, "CapabilityBoundingSet") == ""  # no capability at all
        assert last(unit, "PrivateTmp") == last(unit, "ProtectHome") == "yes"
        assert last(unit, "PrivateDevices") == "yes"
    # every path the appliance writes, as the shipped config sets it, is writable under the sandbox
    cfg = load_config(ROOT / "firmware-config", "demo-box").config
    writable = [Path(p) for k, v in directives(UNIT) if k == "ReadWritePaths" for p in v.split()]
    writable += [Path("/var/lib") / v for k, v in directives(UNIT) if k == "StateDirectory"]
    writable += [Path("/var/cache") / v for k, v in directives(UNIT) if k == "CacheDirectory"]
    for path in (cfg.spool.dir, cfg.inference.models_dir, cfg.metrics.state_file.parent):
        assert any(Path(path).is_relative_to(w) for w in writable), (path, writable)
    cache = dict(v.split("=", 1) for k, v in directives(UNIT) if k == "Environment")["NUMBA_CACHE_DIR"]
    assert any(Path(cache).is_relative_to(w) for w in writable), cache


def exposure(unit: Path, tmp: Path) -> float:
    """``systemd-analyze security --offline=yes`` of a copy of the unit (no drop-ins beside it)."""
    copy = tmp / unit.name
    shutil.copy(unit, copy)
    r = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", str(copy)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout[-2000:] + r.stderr[-2000:]
    return float(m.group(1))


def test_systemd_analyze_rates_both_units_ok_or_better(tmp_path: Path) -> None:
    main, check = exposure(UNIT, tmp_path), exposure(CHECK_UNIT, tmp_path)
    print(f"\nsystemd-analyze security --offline=yes: {UNIT.name} {main}, {CHECK_UNIT.name} {check}")
    assert main <= 2.0  # "OK" ends at 3.9; the appliance needs the network and a JIT
    assert check <= 1.0  # a config check needs neither


def test_the_gpu_drop_in_opens_only_the_nvidia_devices(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    shutil.copy(UNIT, unit)
    (tmp_path / f"{UNIT.name}.d").mkdir()
    shutil.copy(SYSTEMD / "gpu.conf", tmp_path / f"{UNIT.name}.d" / "gpu.conf")
    r = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", str(unit)],
                       capture_output=True, text=True, timeout=60)
    acl = next(line for line in r.stdout.splitlines() if "DeviceAllow=" in line)
    assert "char-nvidia-frontend:rw" in acl and "char-nvidia-uvm:rw" in acl
    assert set(re.findall(r"char-[\w-]+", acl)) == {"char-rtc", "char-nvidia-frontend", "char-nvidia-uvm",
                                                    "char-nvidia-caps"}


def read_only_run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -c CODE`` with the install tree and $HOME read-only (a private mount namespace)."""
    home = env["HOME"]
    script = (f"mount --bind {ROOT} {ROOT} && mount -o remount,bind,ro {ROOT} && "
              f"mount --bind {home} {home} && mount -o remount,bind,ro {home} && "
              f'cd {ROOT} && exec {sys.executable} -c "$0"')
    return subprocess.run([tool("unshare"), "-m", "sh", "-c", script, code], capture_output=True, text=True,
                          timeout=300, env=env)


def test_the_appliance_imports_and_runs_its_kernels_on_a_read_only_install(tmp_path: Path) -> None:
    probe = subprocess.run([tool("unshare"), "-m", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("no private mount namespace here (needs root or CAP_SYS_ADMIN)")
    code = ("import numpy as np; import edge.app.pipeline; from inference import kernels; "
            "means, _ = kernels.stats_rows(np.ones((4, 64)), 0.1); print(means.shape)")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["HOME"] = str(home)
    # without the unit's NUMBA_CACHE_DIR Numba finds nowhere to cache and the import fails: what the
    # unit fixes (this also shows the read-only tree is real)
    bare = read_only_run(code, env)
    assert bare.returncode != 0 and "no locator available" in bare.stderr, bare.stderr[-2000:]
    unit_env = dict(v.split("=", 1) for k, v in directives(UNIT) if k == "Environment")
    cache = tmp_path / "cache" / Path(unit_env["NUMBA_CACHE_DIR"]).relative_to("/var/cache/factory-edge")
    fixed = read_only_run(code, {**env, "NUMBA_CACHE_DIR": str(cache)})
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert any(cache.rglob("*.nbi"))  # the kernels were cached there


def denied_by_unit(unit: Path) -> set[str]:
    """The system calls the unit's filter refuses: its ``~`` groups less what later lines allow again."""
    analyze = tool("systemd-analyze")

    def expand(items: list[str]) -> set[str]:
        names = {s for s in items if not s.startswith("@")}
        groups = [s for s in items if s.startswith("@")]
        if not groups:
            return names
        out = subprocess.run([analyze, "syscall-filter", *groups], capture_output=True, text=True,
                             timeout=60).stdout
        for line in out.splitlines():
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if s.startswith("@"):
                if line.startswith("@"):
                    continue  # a group's heading
                names |= expand([s])
            else:
                names.add(s)
        return names

    lines = [v for k, v in directives(unit) if k == "SystemCallFilter"]
    assert lines and not lines[0].startswith("~"), "the filter is expected to start as an allow list"
    denied: set[str] = set()
    for value in lines[1:]:
        if value.startswith("~"):
            denied |= expand(value[1:].split())
        else:
            denied -= expand(value.split())
    return denied


@pytest.mark.slow
def test_the_appliance_makes_no_system_call_the_unit_refuses(tmp_path: Path, pg_dsn: str,
                                                            mqtt_server_url: str) -> None:
    strace = tool("strace")
    denied = denied_by_unit(UNIT)
    assert "mbind" not in denied and "setuid" in denied and "sched_setscheduler" in denied
    trace = tmp_path / "strace.txt"
    r = subprocess.run(
        [strace, "-f", "-qq", "-o", str(trace), "-e", "trace=" + ",".join(f"?{s}" for s in sorted(denied)),
         sys.executable, "-m", "edge.app.cli", "demo", "--duration", "15", "--baseline-minutes", "2",
         "--historian-dsn", pg_dsn, "--mqtt-url", mqtt_server_url, "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    calls = [line for line in trace.read_text().splitlines() if re.match(r"^\d+\s+\w+\(", line)]
    assert calls == [], calls[:20]
    print(f"\nedge demo --duration 15 under strace: none of the {len(denied)} system calls the unit refuses")
