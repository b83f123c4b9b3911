"""The Debian package CPack builds from the build tree (`cpack -G DEB`,
packaging/CMakeLists.txt; doc/packaging.md).

Two levels, so that the suite leaves the machine as it found it:
- always: the package unpacked with `dpkg-deb -x` into a temporary root: its
  control fields, that every shared library its files load and every Python
  module it imports comes from a package it depends on, its layout under
  /usr, and a checkpoint taken and inspected with the unpacked files only;
- where it can be undone (root, no pyckpt package installed, every
  dependency already installed, so apt installs this package and nothing
  else): `apt-get install ./pyckpt_*.deb`, a checkpoint with the files in
  /usr as a user gets them, then `apt-get purge`, which must leave nothing.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD_DIR, run

APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=120"]
PROGRAM = "import numpy as np, pyckpt\nx = np.arange(1000.0)\npyckpt.checkpoint()\nprint('sum', x.sum())\n"


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    run(["cpack", "-G", "DEB", "-B", str(out), "--config", str(BUILD_DIR / "CPackConfig.cmake")])
    (package,) = out.glob("pyckpt_*.deb")
    return package


def _field(deb, name):
    return run(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


def _depends(deb):
    """Depends as {package: [constraints]}, alternatives flattened."""
    names = {}
    for item in re.split(r"[,|]", _field(deb, "Depends")):
        m = re.fullmatch(r"\s*([a-z0-9.+-]+)(?::\w+)?\s*(?:\((.+)\))?\s*", item)
        assert m, f"unparsable Depends item {item!r}"
        names.setdefault(m.group(1), []).append(m.group(2))
    return names


def _owners(paths):
    """{path: the Debian package that installed it}, with one dpkg -S."""
    # dpkg knows /lib/x/libz.so.1 by the path it installed: /lib or /usr/lib.
    candidates = {c: p for p in paths for c in {p, os.path.realpath(p), "/usr" + p if p.startswith("/lib") else p}}
    listed = run(["dpkg", "-S", *sorted(candidates)], check=False).stdout.splitlines()
    owners = {}
    for line in listed:
        package, _, path = line.partition(": ")
        if path in candidates:
            owners[candidates[path]] = package.split(":")[0].split(",")[0].strip()
    return {p: owners.get(p) for p in paths}


def _needed_libraries(elf):
    """The paths of the shared libraries `elf` names itself (DT_NEEDED),
    as the loader finds them."""
    names = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", run(["readelf", "-d", str(elf)]).stdout)
    listed = run(["ldd", str(elf)]).stdout
    found = {**{os.path.basename(p): p for p in re.findall(r"^\s*(/\S+) \(", listed, re.M)},  # the loader
             **dict(re.findall(r"^\s*(\S+) => (\S+)", listed, re.M))}
    missing = [n for n in names if found.get(n, "not") == "not"]
    assert not missing, f"{elf}: {missing} not found"
    return [found[n] for n in names]


def _elf_files(root):
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF":
            yield path


def _slurm_plugin_dir():
    listed = run(["dpkg", "-S", "auth_munge.so"], check=False).stdout.split()
    return next((Path(p).parent for p in listed if p.endswith("/auth_munge.so")), None)


def _checkpoint_with(cli, tmp_path, env):
    """`pyckpt run` of a small program and `pyckpt inspect` of its checkpoint,
    by the command `cli`, in `env`."""
    (tmp_path / "app.py").write_text(PROGRAM)
    env = {**env, "PYCKPT_KEY_FILE": str(tmp_path / "key")}
    assert run([cli, "run", "--dir", "ckpt", "app.py"], cwd=tmp_path, env=env).stdout == "sum 499500.0\n"
    shown = run([cli, "inspect", "ckpt"], cwd=tmp_path, env=env).stdout
    assert "array <module>:x: float64 (1000,)" in shown and " 0 failed" in shown, shown


def _plain_environment():
    """This environment without the build tree's PYTHONPATH and PYCKPT_*."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PYCKPT_")}


def test_control_fields_and_dependencies(deb, tmp_path):
    assert _field(deb, "Package") == "pyckpt"
    assert _field(deb, "Architecture") == run(["dpkg", "--print-architecture"]).stdout.strip()
    depends = _depends(deb)
    assert ">= 3.11" in depends["python3"] and "<< 3.12" in depends["python3"], depends
    root = tmp_path / "root"
    run(["dpkg-deb", "-x", str(deb), str(root)])
    # Every library the package's binaries name from outside the package ...
    needed = {path for elf in _elf_files(root) for path in _needed_libraries(elf)
              if not Path(path).resolve().is_relative_to(root)}
    # ... and every module its Python package imports (numpy, mpi4py) ...
    code = "import numpy, mpi4py; print(numpy.__file__); print(mpi4py.__file__)"
    needed.update(run(["/usr/bin/python3", "-c", code]).stdout.split())
    # ... comes from a package it depends on.
    missing = {path: owner for path, owner in _owners(needed).items() if owner not in depends}
    assert not missing, f"Depends: {_field(deb, 'Depends')} lacks the packages of {missing}"


def test_layout_under_usr(deb, tmp_path):
    root = tmp_path / "root"
    run(["dpkg-deb", "-x", str(deb), str(root)])
    usr = root / "usr"
    assert (usr / "bin" / "pyckpt").stat().st_mode & 0o111
    # The Python package where the system interpreter looks.
    site = [Path(p) for p in run(["/usr/bin/python3", "-c", "import sys; print('\\n'.join(sys.path))"]).stdout.split()]
    packages = [p.parent for p in usr.glob("lib/python3*/*-packages/pyckpt/__init__.py")]
    assert len(packages) == 1 and Path("/") / packages[0].parent.relative_to(root) in site
    assert list(packages[0].glob("_core.cpython-311-*.so"))
    assert (usr / "include" / "pyckpt" / "h5" / "container.hpp").is_file()
    assert list(usr.glob("lib*/**/cmake/pyckpt/pyckptConfig.cmake"))
    assert (usr / "share" / "modulefiles" / "pyckpt" / f"{_field(deb, 'Version')}.lua").is_file()
    plugin_dir = _slurm_plugin_dir()
    built_plugin = (BUILD_DIR / "lib" / "spank_pyckpt.so").exists()
    if built_plugin and plugin_dir is not None:
        # beside Slurm's own plugins, and the plugstack.conf line names it there
        assert (root / plugin_dir.relative_to("/") / "spank_pyckpt.so").is_file()
        conf = usr / "share" / "pyckpt" / "plugstack.conf.d" / "pyckpt.conf"
        assert conf.read_text() == f"required {plugin_dir}/spank_pyckpt.so\n"


def test_unpacked_files_checkpoint(deb, tmp_path):
    """The installed tree is relocatable: unpacked anywhere, its command finds
    its package and libraries, without the build tree."""
    root = tmp_path / "root"
    run(["dpkg-deb", "-x", str(deb), str(root)])
    cli = str(root / "usr" / "bin" / "pyckpt")
    env = _plain_environment()
    preload = run([cli, "preload-path"], env=env).stdout.strip().split(":")
    assert [Path(p).name for p in preload] == ["libpyckpt_mpi.so", "libpyckpt_python_rank.so"]
    assert all(Path(p).resolve().is_relative_to(root) for p in preload)
    _checkpoint_with(cli, tmp_path, env)


def _apt_cycle_refusal(deb):
    """Why the real apt install/purge cycle cannot be done cleanly here, or None."""
    if os.geteuid() != 0:
        return "not root"
    installed = run(["dpkg-query", "-W", "-f=${Status}", "pyckpt"], check=False).stdout
    if "installed" in installed:
        return "a pyckpt package is installed on this machine already"
    simulated = run(["apt-get", "install", "-s", *APT_LOCK_WAIT, str(deb)], check=False)
    if simulated.returncode != 0:
        return f"apt-get cannot install it: {simulated.stderr.strip()}"
    others = [line.split()[1] for line in simulated.stdout.splitlines()
              if line.startswith("Inst ") and line.split()[1] != "pyckpt"]
    if others:
        return f"apt-get would also install {', '.join(others)}, which purging pyckpt would leave behind"
    return None


def test_apt_install_and_purge(deb, tmp_path):
    refusal = _apt_cycle_refusal(deb)
    if refusal is not None:
        pytest.skip(f"no apt install/purge cycle: {refusal} (the unpacked package is tested above)")
    env = {**_plain_environment(), "DEBIAN_FRONTEND": "noninteractive"}
    before = set(run(["dpkg-query", "-W", "-f=${Package}\n"]).stdout.split())
    try:
        run(["apt-get", "install", "-y", "-q", *APT_LOCK_WAIT, str(deb)], env=env)
        files = run(["dpkg", "-L", "pyckpt"]).stdout.split()
        assert "/usr/bin/pyckpt" in files
        # The system interpreter imports the package without PYTHONPATH.
        where = run(["/usr/bin/python3", "-c", "import pyckpt; print(pyckpt.__file__)"], cwd=tmp_path, env=env)
        assert where.stdout.strip() in files
        preload = run(["pyckpt", "preload-path"], env=env).stdout.strip().split(":")
        assert all(os.path.realpath(p) in {os.path.realpath(f) for f in files} for p in preload), preload
        _checkpoint_with("/usr/bin/pyckpt", tmp_path, env)
    finally:
        run(["apt-get", "purge", "-y", "-q", *APT_LOCK_WAIT, "pyckpt"], env=env)
    assert set(run(["dpkg-query", "-W", "-f=${Package}\n"]).stdout.split()) == before
    leftovers = [f for f in files if f.startswith("/usr/") and os.path.isfile(f)]
    assert not leftovers and not [d for d in files if "/pyckpt" in d and os.path.isdir(d)]
