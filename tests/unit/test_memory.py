"""The allocator settings apply on glibc (and are harmless elsewhere)."""

import subprocess
import sys


def test_tune_malloc_applies_on_glibc() -> None:
    code = "from merpati.core.memory import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() in ("True", "False")
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert out.strip() == "True"
