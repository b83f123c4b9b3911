"""The SPANK plugin as installed (`cmake --install`, the Debian package): its
plugstack.conf line names no preload=, and the plugin finds the libraries to
preload relative to its own file, under whatever prefix it was installed to
(the packaged tree is installed under /usr, the build directory configured
for another prefix). doc/packaging.md, doc/slurm.md."""
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BUILD_DIR, run
from slurm_jobs import cluster_fixture

PLUGIN = BUILD_DIR / "lib" / "spank_pyckpt.so"
# Chosen before the cluster starts (plugstack.conf names the plugin's path);
# the test installs into it.
PREFIX = Path(tempfile.mkdtemp(prefix="pyckpt-installed-"))


def _installed_plugstack_line():
    """The plugstack.conf line that `cmake --install` writes into PREFIX."""
    if not PLUGIN.exists():
        return []
    run(["cmake", "--install", str(BUILD_DIR), "--prefix", str(PREFIX)])
    return [(PREFIX / "share" / "pyckpt" / "plugstack.conf.d" / "pyckpt.conf").read_text().strip()]


cluster = cluster_fixture(_installed_plugstack_line())


@pytest.fixture(scope="module", autouse=True)
def _remove_prefix():
    yield
    shutil.rmtree(PREFIX, ignore_errors=True)


@pytest.mark.skipif(not PLUGIN.exists(), reason=f"{PLUGIN} not built (Slurm's spank.h missing: libslurm-dev)")
def test_installed_plugin_preloads_the_installed_libraries(cluster, tmp_path):
    plugin = next(PREFIX.rglob("spank_pyckpt.so"))
    preload = run([str(PREFIX / "bin" / "pyckpt"), "preload-path"]).stdout.strip()
    assert all(Path(p).is_relative_to(PREFIX) for p in preload.split(":")) and plugin.is_relative_to(PREFIX)
    task = subprocess.run(["srun", "-n", "1", f"--pyckpt-dir={tmp_path / 'ckpt'}", "/bin/sh", "-c",
                           'echo "LD_PRELOAD=$LD_PRELOAD"'],
                          capture_output=True, text=True, timeout=120, env=cluster.environment(), cwd=tmp_path)
    assert task.returncode == 0, task.stderr
    assert task.stdout.strip() == f"LD_PRELOAD={preload}", task.stdout + task.stderr
