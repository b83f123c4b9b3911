"""Reads lines of input and writes each, numbered and reversed, to out.txt:
argv MODE PAUSE [PATH]. MODE: "stdin" iterates over sys.stdin (`for line
in sys.stdin`: tell() is disabled meanwhile), "stdin-readline" calls
sys.stdin.readline(), "file" iterates over the file PATH opened by the
program. PAUSE: seconds to sleep per line. Prints the line count at the end."""
import sys
import time

mode, pause = sys.argv[1], float(sys.argv[2])
print("program start", file=sys.stderr, flush=True)
source = open(sys.argv[3], encoding="utf-8") if mode == "file" else sys.stdin
lines = iter(source.readline, "") if mode == "stdin-readline" else source
out = open("out.txt", "w", encoding="utf-8")
count = 0
for line in lines:
    count += 1
    out.write(f"{count}: {line.rstrip()[::-1]}\n")
    out.flush()
    time.sleep(pause)
print(f"lines read {count}")
