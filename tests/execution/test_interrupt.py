"""Ctrl-C during ``materialize()`` cancels the run cleanly and raises ``KeyboardInterrupt``."""

import subprocess
import sys
import textwrap

STEPS = 20

SCRIPT = textwrap.dedent(
    f"""
    import os
    import signal
    import time

    import rivers as rs

    ran = []

    def work(index):
        ran.append(index)
        if index == 0:
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C during the first step
        time.sleep(0.05)  # each step does some work
        return index

    # A chain step_0 -> step_1 -> ... of {STEPS} assets.
    for index in range({STEPS}):
        upstream = f"step_{{index - 1}}" if index else ""
        exec(f"@rs.Asset\\ndef step_{{index}}({{upstream}}):\\n    return work({{index}})\\n")

    repo = rs.CodeRepository(assets=[globals()[f"step_{{i}}"] for i in range({STEPS})])
    repo.resolve(storage=rs.Storage.memory())
    try:
        repo.materialize(run_id_override="interrupted")
    except KeyboardInterrupt:
        run = repo.storage.get_run("interrupted")
        events = [e.event_type for e in repo.storage.get_events_for_run("interrupted")]
        print("interrupted", run.status, len(ran), events[-1])
    else:
        print("not interrupted")
    """
)


def test_ctrl_c_cancels_the_run_and_raises_keyboard_interrupt(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    word, status, ran, last_event = completed.stdout.split()
    assert (word, status, last_event) == ("interrupted", "Canceled", "RunCanceled")
    # Cancellation is cooperative: the running step finished, and the run stopped starting
    # steps long before the end of the chain.
    assert 1 <= int(ran) < STEPS
