"""How a run tells that an earlier run's process is gone (flows/resume.py)."""
import socket
import subprocess

from s3flow.flows.resume import HOST_LABEL, PID_LABEL, _process_gone


def test_a_live_process_is_never_taken_for_dead():
    import os

    assert _process_gone({HOST_LABEL: socket.gethostname(), PID_LABEL: str(os.getpid())}) == ""
    assert _process_gone({HOST_LABEL: "another-machine", PID_LABEL: "1"}) == ""  # unknowable here
    assert _process_gone({}) == ""


def test_a_process_that_exited_is_gone():
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert "no longer exists" in _process_gone({HOST_LABEL: socket.gethostname(), PID_LABEL: str(ended.pid)})
