"""MPI objects an mpi4py program holds across a checkpoint (issue 14, "MPI
features that real codes use"): groups, Info objects, error handlers set on
communicators, copies of predefined operations, and derived datatypes of every
constructor mpi4py offers (programs/mpi/objects.py). A job killed after its
checkpoint and restarted must log exactly what the uninterrupted job logged;
an object pyckpt cannot re-create (a user-defined MPI.Op) fails the checkpoint
with a message that names it, and the job goes on."""
import re

from mpi_job_harness import PROGRAMS, Job, check_same_as_reference, pyckpt_mpirun, read_outputs, run_with_kills


def test_objects_are_the_same_after_a_restart(tmp_path):
    program, np_, args = "objects.py", 3, [40, 12]
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    ref_job = Job(pyckpt_mpirun(ref_dir / "ckpt.d", program, np_, args), ref_dir, "run")
    assert ref_job.wait() == 0, ref_job.describe()
    expected = {name: data.replace(b"checkpoint returned False", b"checkpoint returned True")
                for name, data in read_outputs(ref_dir).items()}
    assert len(expected) == np_ and all(b"checkpoint returned True" in d for d in expected.values())
    log = expected["out.0"].decode()
    # What the reference shows is what MPI does (so the comparison means something).
    assert "errhandlers world=ERRORS_RETURN dup=ERRORS_RETURN halves=ERRORS_RETURN fatal=ERRORS_ARE_FATAL" in log
    assert "invalid send raised error class" in log
    assert re.search(r"type darray size=\d+ extent=\d+ got=\[\d", log), log
    ref = (ref_job.stdout.replace("checkpoint returned False", "checkpoint returned True"), expected)
    job, work, history = run_with_kills(tmp_path, program, np_, args, interval=None, restarts=["same"],
                                        seed_name="objects", max_delay=0.4)
    check_same_as_reference(ref, job, work, history, 1)


def test_user_defined_operation_fails_the_checkpoint_naming_it(tmp_path):
    """Named in the program's terms (issue 13, "Messages that name the user's
    code"): the variable and the frame, at the line of the checkpoint."""
    job = Job(pyckpt_mpirun(tmp_path / "ckpt.d", "objects.py", 2, ["user-op"]), tmp_path, "run")
    assert job.wait() == 0, job.describe()
    program = PROGRAMS / "objects.py"
    line = next(i for i, text in enumerate(program.read_text().splitlines(), 1) if text.strip() == "pyckpt.checkpoint()")
    for rank in range(2):
        log = (tmp_path / f"out.{rank}").read_text()
        assert log.startswith("checkpoint failed:"), log
        assert (f"held in <module> at {program}:{line}: cannot capture a mpi4py.MPI.Op object (a user-defined "
                f"reduction (MPI.Op.Create) holds a Python function") in log, log
    assert not (tmp_path / "ckpt.d" / "latest").exists()


def test_unsupported_call_fails_the_checkpoint_naming_its_line(tmp_path):
    """A call checkpoints cannot follow (a persistent request) is named with
    the program's line that made it."""
    job = Job(pyckpt_mpirun(tmp_path / "ckpt.d", "objects.py", 2, ["persistent"]), tmp_path, "run")
    assert job.wait() == 0, job.describe()
    program = PROGRAMS / "objects.py"
    line = next(i for i, text in enumerate(program.read_text().splitlines(), 1) if "comm.Send_init(" in text)
    for rank in range(2):
        log = (tmp_path / f"out.{rank}").read_text()
        assert log.startswith("checkpoint failed:"), log
        assert f"the job used MPI calls a checkpoint cannot capture: MPI_Send_init at {program}:{line}" in log, log
    assert not (tmp_path / "ckpt.d" / "latest").exists()
