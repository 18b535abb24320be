"""Installs what the stack runs: Debian packages, and the Go servers built once into a git-ignored cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import StackError
from .settings import Settings

MIN_GO = (1, 26)


@dataclass(frozen=True)
class GoServer:
    name: str
    module: str
    package: str
    version: str
    # Neighbouring tags without a go.mod `replace`, tried in order if the pinned one fails to build.
    fallbacks: tuple[str, ...] = ()
    cgo: bool = False
    debian_build_deps: tuple[str, ...] = ()
    version_ldflag: str = ""

    def path(self, bin_dir: Path, version: str | None = None) -> Path:
        return bin_dir / f"{self.name}-{version or self.version}"


LIVEKIT_SERVER = GoServer(
    name="livekit-server",
    module="github.com/livekit/livekit-server",
    package="cmd/server",
    version="v1.13.5",
    fallbacks=("v1.13.4", "v1.13.3", "v1.13.2", "v1.12.0"),
)
LIVEKIT_SIP = GoServer(
    name="livekit-sip",
    module="github.com/livekit/sip",
    package="cmd/livekit-sip",
    # v1.8.0, not v1.11.0: the Go module proxy here answers 403 for v1.9.0 through v1.11.x.
    version="v1.8.0",
    fallbacks=("v1.11.0", "v1.10.0", "v1.9.0"),
    cgo=True,
    debian_build_deps=("pkg-config", "libopus-dev", "libopusfile-dev", "libsoxr-dev"),
    version_ldflag="github.com/livekit/sip/version.Version",
)
REDIS_DEBIAN_PACKAGE = "redis-server"
# What the test suite drives: SIPp (a real SIP user agent), `ip` and `nsenter` for its network namespaces, Chromium,
# Kamailio (with its TLS module) as the simulated carrier's SIP proxy in the carrier tests, openssl for their test CA.
TEST_TOOL_PACKAGES = ("sip-tester", "iproute2", "util-linux", "chromium", "kamailio", "kamailio-tls-modules",
                      "openssl",
                      "postgresql")  # the call store's tests run on a throwaway PostgreSQL cluster too


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def missing_debian_packages(packages: tuple[str, ...] | list[str]) -> list[str]:
    missing = []
    for package in packages:
        probe = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
        )
        if "install ok installed" not in probe.stdout:
            missing.append(package)
    return missing


def ensure_debian_packages(packages: tuple[str, ...] | list[str]) -> None:
    missing = missing_debian_packages(packages)
    if not missing:
        return
    command = f"apt-get install -y {' '.join(missing)}"
    if os.geteuid() != 0:
        raise StackError(f"missing Debian packages {', '.join(missing)}; install them with: sudo {command}")
    say(f"installing Debian packages: {' '.join(missing)} (apt-get, shows progress below)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")  # apt-get's own environment, plus this
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    if subprocess.run([*apt, "install", "-y", "-q", *missing], env=env, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run([*apt, "update", "-q"], env=env, check=False)
        if subprocess.run([*apt, "install", "-y", "-q", *missing], env=env, check=False).returncode != 0:
            raise StackError(f"could not install {', '.join(missing)}; try by hand: {command}")


def check_go_toolchain() -> str:
    go = shutil.which("go")
    if not go:
        raise StackError("Go is not installed; install Go >= 1.26 (https://go.dev/doc/install) and put `go` on PATH")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if not match or (int(match[1]), int(match[2])) < MIN_GO:
        raise StackError(f"{out or 'go'} is too old: livekit-server needs Go >= 1.26; install a newer Go")
    return go


def installed_path(server: GoServer, bin_dir: Path | None = None) -> Path:
    """The cached binary of the pinned tag or, failing that, of a fallback tag; the pinned path if none is built.
    `bin_dir`: where binaries are built (default: the settings' STACK_BIN_DIR or .cache/bin)."""
    bin_dir = bin_dir or Settings.load().bin_dir
    for version in (server.version, *server.fallbacks):
        if server.path(bin_dir, version).exists():
            return server.path(bin_dir, version)
    return server.path(bin_dir)


def ensure_go_server(server: GoServer, bin_dir: Path) -> Path:
    """The built binary, building it on first use (with the fallback tags if the pinned one fails)."""
    if installed_path(server, bin_dir).exists():
        return installed_path(server, bin_dir)
    go = check_go_toolchain()
    if server.debian_build_deps:
        ensure_debian_packages(server.debian_build_deps)
    if server.cgo and not shutil.which("gcc"):
        raise StackError(f"{server.name} needs a C compiler (CGO); install it with: apt-get install -y gcc")
    failures = []
    for version in (server.version, *server.fallbacks):
        try:
            return _go_install(go, server, version, bin_dir)
        except StackError as failure:
            failures.append(str(failure))
            say(f"{server.name} {version} did not build; trying the next pinned fallback")
    raise StackError(f"{server.name} did not build: " + " | ".join(failures))


def _go_install(go: str, server: GoServer, version: str, bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    destination = server.path(bin_dir, version)
    env = dict(os.environ, CGO_ENABLED="1" if server.cgo else "0")  # Go's own environment (GOPATH, proxy), plus this
    ldflags = ["-ldflags", f"-X {server.version_ldflag}={version.lstrip('v')}"] if server.version_ldflag else []
    target = f"{server.module}/{server.package}@{version}"
    say(f"building {server.name} {version} (`go install {target}`; the first build takes several minutes)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=bin_dir) as gobin:
        failure = _run_with_progress([go, "install", "-v", *ldflags, target], dict(env, GOBIN=gobin), server.name)
        built = list(Path(gobin).iterdir())
        if built:
            shutil.move(str(built[0]), destination)
    if not destination.exists():
        # `go install pkg@version` also asks the proxy for the module's version list (deprecation check); some
        # proxies refuse that. Building inside the downloaded module is the same build without that query.
        say(f"  `go install` failed ({' / '.join(failure[-2:])}); building from the downloaded module instead")
        module_dir = _download_module(go, server.module, version)
        tmp = destination.with_suffix(".partial")
        failure = _run_with_progress(
            [go, "build", "-v", *ldflags, "-o", str(tmp), f"./{server.package}"], env, server.name, cwd=module_dir
        )
        if failure or not tmp.exists():
            raise StackError(f"{server.name} {version} failed to build: " + " / ".join(failure[-5:]))
        tmp.rename(destination)
    say(f"built {server.name} {version} in {time.monotonic() - started:.0f} s -> {destination}")
    return destination


def _download_module(go: str, module: str, version: str) -> Path:
    probe = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True, check=False
    )
    info = json.loads(probe.stdout or "{}")
    if info.get("Error") or not info.get("Dir"):
        reason = (info.get("Error") or probe.stderr).strip().splitlines()[0]
        raise StackError(f"the Go module proxy does not serve {module}@{version}: {reason}")
    return Path(info["Dir"])


def _run_with_progress(command: list[str], env: dict[str, str], label: str, cwd: Path | None = None) -> list[str]:
    """Runs a build, printing a line per 25 compiled packages (plain lines, so CI logs show it too).

    Returns the output when the command failed, else an empty list.
    """
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines: list[str] = []
    compiled = 0
    for line in process.stdout:
        line = line.rstrip()
        lines.append(line)
        if line.startswith("go: downloading"):
            continue
        compiled += 1
        if compiled % 25 == 0:
            say(f"  {label}: {compiled} packages compiled ...")
    process.wait()
    return lines if process.returncode else []


def binary_version(path: Path) -> str:
    """The version a built binary reports; the file name carries the pinned tag."""
    return path.name.rsplit("-", 1)[-1]
