"""Input files for the tests of a program's stdin across a restart
(test_mpi_launch.py for jobs, test_process_stdin.py for `pyckpt run`)."""


def input_file(path, lines):
    """An input of `lines` lines, some non-ASCII and a few CRLF-terminated
    (the text layer decodes and translates them: its read-ahead is not
    the bytes it came from)."""
    path.write_bytes(b"".join(f"line {i} \u00e9t\u00e9 \u4e2d {'x' * (i % 50)}".encode() + (b"\r\n" if i % 7 == 0
                                                                                          else b"\n")
                              for i in range(1, lines + 1)))
    return path


def expected_lines(input_path):
    text = input_path.read_bytes().decode().replace("\r\n", "\n")
    return "".join(f"{n}: {line.rstrip()[::-1]}\n" for n, line in enumerate(text.splitlines(), 1))
