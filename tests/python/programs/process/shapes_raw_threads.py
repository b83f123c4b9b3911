"""The shape of the Benchmarks Game's threadring and chameneos-redux:
worker threads started with _thread (no threading.Thread object), handing
a token around through locks while the main thread waits for them, polling
at Python level. Then a second phase without threads. argv: ROUNDS STEPS.
Prints the token's last holder and a line per step of the second phase."""
import _thread
import sys
import time

rounds, steps = int(sys.argv[1]), int(sys.argv[2])
workers = 5
locks = [_thread.allocate_lock() for _ in range(workers)]
for lock in locks:
    lock.acquire()
done = _thread.allocate_lock()
done.acquire()
token = [rounds, -1]


def worker(number, mine, next_one):
    while True:
        mine.acquire()
        if token[0] > 0:
            token[0] -= 1
            token[1] = number
            next_one.release()
        else:  # the end: said once to the main thread, passed on to every worker
            if token[0] == 0:
                token[0] = -1
                done.release()
            next_one.release()
            return


for number in range(workers):
    _thread.start_new_thread(worker, (number, locks[number], locks[(number + 1) % workers]))
locks[0].release()
while not done.acquire(False):  # the main thread polls: it reaches safe points
    time.sleep(0.005)
time.sleep(0.2)  # the other workers end too
print("token last held by", token[1], flush=True)

total = 0
for step in range(steps):
    for i in range(30000):
        total = (total * 31 + i) % 1000003
    print(f"step {step} {total}", flush=True)
print("done")
