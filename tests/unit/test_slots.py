import threading
import time

from s3flow.copy import AdaptiveSlots


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_throttling_halves_the_limit_once_per_second_and_successes_win_it_back():
    clock = Clock()
    slots = AdaptiveSlots(16, recover=3, clock=clock)
    slots.slow_down()
    slots.slow_down()  # the same burst: no second cut
    assert (slots.limit, slots.slowdowns) == (8, 1)
    for _ in range(4):
        clock.now += 1.5
        slots.slow_down()
    assert (slots.limit, slots.lowest) == (1, 1)  # never below one
    for _ in range(9):
        slots.succeeded()
    assert slots.limit == 4
    for _ in range(300):
        slots.succeeded()
    assert slots.limit == 16  # back to the maximum, not beyond


def test_requests_in_flight_never_exceed_the_limit():
    slots = AdaptiveSlots(8)
    slots.slow_down()  # limit 4
    busy, peak, lock = [0], [0], threading.Lock()

    def request():
        with slots:
            with lock:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.01)
            with lock:
                busy[0] -= 1

    threads = [threading.Thread(target=request) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 4
