"""The Python snippets of ``docs/delta.md`` run, in order, in an empty directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "delta.md"


def test_delta_doc_snippets_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 8
    script = tmp_path / "snippets.py"
    script.write_text("\n\n".join(blocks))

    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )

    assert done.returncode == 0, done.stderr
