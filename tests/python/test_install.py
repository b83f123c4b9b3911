"""`cmake --install` gives a prefix with a working pyckpt command, the Python
package, libpyckpt_mpi.so, headers and a CMake package that a third-party
C++ program finds with find_package(pyckpt), and an Lmod modulefile that
makes them available with `module load pyckpt` (real Lmod, Debian's lmod)."""
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import BUILD_DIR, PYTHON, run

LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")

CONSUMER = Path(__file__).parent / "programs" / "consumer"


def test_installed_prefix_works(tmp_path):
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", str(BUILD_DIR), "--prefix", str(prefix)])
    cli = prefix / "bin" / "pyckpt"
    assert cli.exists()
    # The installed command must not depend on the build tree's PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    preload = run([str(cli), "preload-path"], env=env).stdout.strip().split(":")
    assert [Path(p).name for p in preload] == ["libpyckpt_mpi.so", "libpyckpt_python_rank.so"]
    for path in preload:
        assert Path(path).is_file() and Path(path).resolve().is_relative_to(prefix.resolve())
    assert (prefix / "include" / "pyckpt" / "h5" / "container.hpp").is_file()

    # A consumer project built against the prefix writes a checkpoint ...
    consumer_build = tmp_path / "consumer-build"
    run(["cmake", "-S", str(CONSUMER), "-B", str(consumer_build), f"-DCMAKE_PREFIX_PATH={prefix}"])
    run(["cmake", "--build", str(consumer_build)])
    ckpt = tmp_path / "ckpt"
    run([str(consumer_build / "consumer"), str(ckpt)])
    # ... which the installed tools and package read.
    out = run([str(cli), "inspect", str(ckpt)], env=env).stdout
    assert "array  x" in out and " 0 failed" in out
    site = next(prefix.glob("lib/python3*/*-packages"))
    code = ("import numpy as np, pyckpt, pyckpt.container as c; from pyckpt import _core; "
            f"print(c.load_array(_core.Reader({str(ckpt)!r}), 0, 'x').sum())")
    total = run([PYTHON, "-c", code], env={**env, "PYTHONPATH": str(site)}).stdout.strip()
    assert float(total) == np.sum(0.5 * np.arange(100))
    shutil.rmtree(prefix)


def _lmod():
    """Lmod's bash init; installs Debian's lmod if it is missing (as
    tools/install-deps.sh does), and skips only if that is not possible."""
    if not LMOD_INIT.exists() and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120",
                        "lmod"], capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not LMOD_INIT.exists():
        pytest.skip(f"Lmod is not installed ({LMOD_INIT} missing) and could not be installed "
                    f"(tools/install-deps.sh installs it: apt-get install lmod)")
    return LMOD_INIT


def test_lmod_module_loads(tmp_path):
    lmod = _lmod()
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", str(BUILD_DIR), "--prefix", str(prefix)])
    modulefiles = prefix / "share" / "modulefiles"
    (tmp_path / "app.py").write_text("import numpy as np, pyckpt\nx = np.ones(10)\npyckpt.checkpoint()\n")
    # A login-like shell: nothing of the build tree, no pyckpt on PATH.
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "MODULEPATH": str(modulefiles),
           "PYCKPT_KEY_FILE": str(tmp_path / "key"), "LANG": "C.UTF-8"}
    script = f"""
        set -e
        source {shlex.quote(str(lmod))}
        ! command -v pyckpt
        module load pyckpt
        module list 2>&1
        echo "PATH_CLI=$(command -v pyckpt)"
        echo "PACKAGE=$(/usr/bin/python3 -c 'import pyckpt; print(pyckpt.__file__)')"
        echo "PRELOAD=$PYCKPT_PRELOAD"
        echo "PRELOAD_CLI=$(pyckpt preload-path)"
        echo "MAPPED=$(LD_PRELOAD=$PYCKPT_PRELOAD /usr/bin/python3 -c 'print(open("/proc/self/maps").read())' |
                       grep -c libpyckpt_mpi.so)"
        pyckpt run --dir ckpt app.py
        echo "INSPECT=$(pyckpt inspect ckpt | grep -c 'array <module>:x: float64 (10,)')"
        module unload pyckpt
        echo "AFTER=${{PYCKPT_PRELOAD:-unset}} $(command -v pyckpt || echo no-cli)"
    """
    proc = run(["bash", "--noprofile", "--norc", "-c", script], cwd=tmp_path, env=env)
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert "pyckpt/" in proc.stdout  # module list
    assert values["PATH_CLI"] == str(prefix / "bin" / "pyckpt")
    assert Path(values["PACKAGE"]).is_relative_to(prefix)
    assert values["PRELOAD"] == values["PRELOAD_CLI"]
    assert all(Path(p).is_file() and Path(p).is_relative_to(prefix) for p in values["PRELOAD"].split(":"))
    assert int(values["MAPPED"]) >= 1
    assert values["INSPECT"] == "1"
    assert values["AFTER"] == "unset no-cli"
    shutil.rmtree(prefix)
