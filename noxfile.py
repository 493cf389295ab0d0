"""Every check agentlease runs: tests, package isolation, lint and types.

Run all of them with ``python -m nox``; pick one with ``python -m nox -s tests``. Sessions use
uv to build their environments from ``uv.lock``, so a run installs exactly what CI installs.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False
nox.options.sessions = [
    "tests",
    "tests_oldest",
    "isolation_core",
    "isolation_langchain",
    "isolation_llamaindex",
    "lint",
    "types",
]

ROOT = Path(__file__).parent
CORE = "packages/agentlease"
LANGCHAIN = "packages/agentlease-langchain"
LLAMAINDEX = "packages/agentlease-llamaindex"
CORE_TEST_DEPS = ["pytest>=8.3", "pytest-asyncio>=0.25", "opentelemetry-sdk>=1.30"]


def _sync(session: nox.Session, *groups: str) -> None:
    """Install the locked workspace and the given dependency groups into the session."""
    args = ["uv", "sync", "--frozen", "--inexact"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args, env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}, silent=True
    )


def _oldest_python() -> str | None:
    """Find a working Python 3.10, the oldest version agentlease supports, if one is here."""
    candidates = [shutil.which("python3.10") or ""]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.10*/bin/python3.10"))
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite, the benchmark smoke run included, on the locked dependencies."""
    _sync(session, "test", "bench")
    session.run("pytest", *session.posargs)


@nox.session(python=_oldest_python() or False)
def tests_oldest(session: nox.Session) -> None:
    """Run the test suite on the oldest supported Python."""
    _sync(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=_oldest_python() or False)
def isolation_core(session: nox.Session) -> None:
    """Install the core alone on the oldest supported Python and run its tests.

    LangChain and LlamaIndex must not be importable, which proves the core never needs them.
    """
    session.install(f"./{CORE}", *CORE_TEST_DEPS)
    for framework in ("langchain_core", "llama_index"):
        session.run(
            "python",
            "-c",
            "import importlib.util, sys; "
            f"sys.exit(importlib.util.find_spec({framework!r}) is not None)",
        )
    session.run(
        "pytest", "tests/core", "tests/security", "-p", "no:cacheprovider", *session.posargs
    )


@nox.session
def isolation_langchain(session: nox.Session) -> None:
    """Install the LangChain adapter with only its own dependencies and import it."""
    session.install(f"./{CORE}", f"./{LANGCHAIN}")
    session.run("python", "-c", "import agentlease_langchain")
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('llama_index') is not None)",
    )


@nox.session
def isolation_llamaindex(session: nox.Session) -> None:
    """Install the LlamaIndex adapter with only its own dependencies and import it."""
    session.install(f"./{CORE}", f"./{LLAMAINDEX}")
    session.run("python", "-c", "import agentlease_llamaindex")
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "sys.exit(importlib.util.find_spec('langchain_core') is not None)",
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    _sync(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """Type-check the packages with pyright in strict mode."""
    _sync(session, "types", "test")
    session.run("pyright")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmark suite and write its report to docs/benchmarks.md.

    The full run took about six minutes on the two-core machine that docs/benchmarks.md
    describes. Pass ``-- --smoke`` for a run of a few seconds that only shows the benchmarks
    work. The session is not among the default ones.
    """
    _sync(session, "test", "bench")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
