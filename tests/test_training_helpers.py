"""The test launcher turns a hung run into a failure that shows where each process stood."""

from __future__ import annotations

import psutil
import pytest
import training_helpers


def test_a_hung_launch_fails_with_its_stack_and_leaves_no_process(tmp_path, monkeypatch):
    script = tmp_path / "stuck.py"
    script.write_text("import time\n\ndef wait_forever():\n    time.sleep(600)\n\nwait_forever()\n")
    monkeypatch.setattr(training_helpers, "ATTEMPT_SECONDS", 3)
    with pytest.raises(AssertionError, match="hung for 3 s") as failure:
        training_helpers.run_launched(1, script)
    assert "in wait_forever" in str(failure.value)
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(script) in " ".join(p.info["cmdline"] or [])]
