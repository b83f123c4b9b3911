"""A real one-node Slurm cluster on this machine, for the Slurm tests.

LocalCluster(directory).start() writes a munge key and a slurm.conf into
`directory`, starts munged, slurmctld and slurmd from the Debian packages
(slurm-wlm, munge) with everything -- sockets, spool, state, logs, pid
files -- inside that directory and on ports no other cluster uses, and
waits until the node is idle. stop() ends the three daemons it started (by
pid) and is safe to call after a failed start. environment() is what a
client (sbatch, squeue, scontrol) needs to talk to this cluster.

The configuration is the smallest that runs batch jobs as root on one node,
plus what makes requeue tests fast:
- JobRequeue=1: batch jobs may be requeued.
- AuthInfo=...,cred_expire=N: Slurm holds a requeued job for
  cred_expire + 1 seconds before it may start again (default 120 s).
- SchedulerParameters=sched_interval=1 and MinJobAge: the held job is
  started within a second or two of its begin time; finished jobs leave the
  controller's memory quickly.
- KillWait: seconds between SIGTERM and SIGKILL when a job is ended.
- the node declares 4 CPUs (SlurmdParameters=config_overrides) so that
  `sbatch -n 4` fits on this 2-core machine.
- spank_plugins: plugstack.conf lines (`required /path/plugin.so ARGS`),
  loaded by srun, sbatch and slurmstepd (PlugStackConfig); none by default.
"""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "srun")
DEBIAN_PACKAGES = ("slurm-wlm", "munge")
NODE = "pyckpt-node"
REQUEUE_HOLD = 5        # seconds (+1) a requeued job waits before it may start again (cred_expire, at least 5)
NODE_CPUS = 4


def missing_programs():
    return [p for p in DAEMONS + CLIENTS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def ensure_installed():
    """Installs slurm-wlm and munge with apt-get if a program is missing.
    Returns None when everything is there, else why it could not be
    installed (the tests then skip saying so)."""
    if not missing_programs():
        return None
    if os.geteuid() != 0:
        return f"{', '.join(missing_programs())} missing and not root: cannot apt-get install {' '.join(DEBIAN_PACKAGES)}"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEBIAN_PACKAGES]):
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return f"`{' '.join(command)}` failed: {proc.stderr.strip()[-500:]}"
    still = missing_programs()
    return f"still missing after apt-get install: {', '.join(still)}" if still else None


def _free_ports(count):
    """Ports free on the loopback now (bound and released, all held at once so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _daemon(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


class LocalCluster:
    def __init__(self, directory, spank_plugins=()):
        self.dir = Path(directory)
        self.conf = self.dir / "slurm.conf"
        self.spank_plugins = list(spank_plugins)
        self.munge_socket = self.dir / "munge" / "munge.socket"
        self.pids = {}   # daemon name -> pid, for stop()

    # --- configuration -------------------------------------------------------------

    def _write_config(self):
        for sub in ("munge", "state", "spool", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "munge", 0o700)
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        ctld_port, slurmd_port = _free_ports(2)
        d = self.dir
        plugstack = d / "plugstack.conf"
        plugstack.write_text("".join(f"{line}\n" for line in self.spank_plugins))
        self.conf.write_text(f"""\
ClusterName=pyckpt
SlurmctldHost={socket.gethostname()}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire={REQUEUE_HOLD}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
MinJobAge=5
KillWait=5
InactiveLimit=0
OverTimeLimit=0
ReturnToService=2
SlurmdParameters=config_overrides
PlugStackConfig={plugstack}
NodeName={NODE} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} State=UNKNOWN
PartitionName=test Nodes={NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")

    def environment(self, base=None):
        """Environment of a Slurm client of this cluster (and of its jobs:
        sbatch exports it, so `scontrol requeue` inside a job finds it)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    # --- daemons ---------------------------------------------------------------------

    def start(self, timeout=60):
        self._write_config()
        d = self.dir
        self._spawn("munged", [_daemon("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={d}/munge/munge.key", f"--pid-file={d}/munge/munged.pid",
                               f"--log-file={d}/log/munged.log", f"--seed-file={d}/munge/munged.seed"])
        self._wait_for(lambda: self.munge_socket.exists(), timeout, "munged's socket")
        self._spawn("slurmctld", [_daemon("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", [_daemon("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait_for(lambda: self.node_state() in ("IDLE",), timeout, f"node {NODE} to be idle")
        return self

    def _spawn(self, name, command):
        log = open(self.dir / "log" / f"{name}.out", "ab")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.environment(), start_new_session=True)
        log.close()
        self.pids[name] = proc
        return proc

    def stop(self):
        """Ends the daemons this cluster started (slurmd first: it ends the
        jobs still running on the node), then waits for them."""
        for name in reversed(DAEMONS):
            proc = self.pids.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.pids.clear()

    def _wait_for(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [n for n, p in self.pids.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")
            time.sleep(0.2)

    def logs(self, tail=40):
        """The last lines of every daemon log, for a failure message."""
        out = []
        for path in sorted((self.dir / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    # --- client commands ---------------------------------------------------------------

    def run(self, *command, check=True, timeout=30, env=None):
        """Runs a client command; env: variables added to the environment."""
        proc = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=timeout,
                              env={**self.environment(), **(env or {})})
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def node_state(self):
        proc = subprocess.run(["sinfo", "-h", "-n", NODE, "-o", "%T"], capture_output=True, text=True,
                              timeout=10, env=self.environment())
        return proc.stdout.strip().upper().rstrip("*") if proc.returncode == 0 else None

    def job(self, job_id):
        """{field: value} of `scontrol show job` (JobState, RestartCnt, ...); {} once it is gone."""
        proc = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True,
                              timeout=10, env=self.environment())
        if proc.returncode != 0:
            return {}
        return dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)
