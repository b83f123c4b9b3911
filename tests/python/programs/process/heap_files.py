"""Open files (read, write, append; text and binary; one read-write) are
reopened at the same position after the restart; what was written before
the checkpoint is not truncated; a closed file stays closed."""
import os

from ckpt import checkpoint

with open("input.txt", "w") as f:
    f.write("line1\nline2\nline3\nline4\n")
with open("log.txt", "w") as f:
    f.write("existing\n")

reader = open("input.txt")
print(repr(reader.readline()))
binary_reader = open("input.txt", "rb")
binary_reader.seek(6)
writer = open("out.txt", "w")
writer.write("written before\n")
appender = open("log.txt", "a")
appender.write("appended before\n")
bwriter = open("out.bin", "wb")
bwriter.write(b"\x01\x02")
rw = open("input.txt", "r+")
rw.seek(12)
closed = open("input.txt")
closed.close()
checkpoint()
print(repr(reader.readline()), reader.tell())
print(binary_reader.read(5))
writer.write("written after\n")
appender.write("appended after\n")
bwriter.write(b"\x03")
print(repr(rw.read(6)), closed.closed)
for f in (reader, binary_reader, writer, appender, bwriter, rw):
    f.close()
print(open("out.txt").read().splitlines(), open("log.txt").read().splitlines())
print(open("out.bin", "rb").read(), os.path.getsize("input.txt"))
