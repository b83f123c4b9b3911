"""`cmake --install` gives a prefix with a working pyckpt command, the Python
package, libpyckpt_mpi.so, headers and a CMake package that a third-party
C++ program finds with find_package(pyckpt)."""
import os
import shutil
from pathlib import Path

import numpy as np

from conftest import BUILD_DIR, PYTHON, run

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
    site = next(prefix.glob("lib/python3*/site-packages"))
    code = ("import numpy as np, pyckpt, pyckpt.container as c; from pyckpt import _core; "
            f"print(c.load_array(_core.Reader({str(ckpt)!r}), 0, 'x').sum())")
    total = run([PYTHON, "-c", code], env={**env, "PYTHONPATH": str(site)}).stdout.strip()
    assert float(total) == np.sum(0.5 * np.arange(100))
    shutil.rmtree(prefix)
