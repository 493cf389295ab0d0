"""Startup benchmark: how long importing each package takes in a fresh interpreter.

Each measurement starts a new Python process that times one import statement with
`time.perf_counter_ns`, so interpreter startup is excluded and nothing is cached in
``sys.modules``. Rounds alternate the statements.

Installers compile bytecode, so a user's imports read cached ``.pyc`` files. The development
environment may have none (uv does not compile by default, and ``PYTHONDONTWRITEBYTECODE``
stops Python from writing them), which would make every import compile its modules from source.
The measured processes therefore keep their bytecode under a scratch ``PYTHONPYCACHEPREFIX``,
which one untimed run of each statement fills. The ``no bytecode cache`` row shows the cost
without it.

``agentlease_langchain, own part`` imports `agentlease` and LangChain's chat model and tool
base classes first and times only the adapter on top. httpx imports its command-line
interface, and with it rich and click, whenever those two are installed, as they are in this
repository's test environment. ``agentlease, without rich and click`` hides them, as in an
install of agentlease alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from benchmarks.stats import Summary, summarize

__all__ = ["IMPORTS", "import_breakdown", "run_startup"]

_FRAMEWORK = (
    "from langchain_core.language_models import BaseChatModel; "
    "from langchain_core.tools import BaseTool"
)
_NO_HTTPX_CLI = "import sys; sys.modules['click'] = sys.modules['rich'] = None"

IMPORTS: dict[str, tuple[str, str]] = {
    "agentlease": ("", "import agentlease"),
    "agentlease, without rich and click": (_NO_HTTPX_CLI, "import agentlease"),
    "agentlease, no bytecode cache": ("", "import agentlease"),
    "agentlease_langchain": ("", "import agentlease_langchain"),
    "agentlease_langchain, own part": (
        f"import agentlease; {_FRAMEWORK}",
        "import agentlease_langchain",
    ),
    "LangChain BaseChatModel and BaseTool (reference)": ("", _FRAMEWORK),
    "langchain_openai (reference)": ("", "import langchain_openai"),
}
"""Per label, the statement run untimed first and the import statement that is timed."""

_UNCACHED = frozenset({"agentlease, no bytecode cache"})

_PROGRAM = """
import time
{prepare}
start = time.perf_counter_ns()
{statement}
print((time.perf_counter_ns() - start) / 1e6)
"""


def _environment(cache_dir: str | None) -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("PYTHONPYCACHEPREFIX", None)
    if cache_dir is None:
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        environment["PYTHONPYCACHEPREFIX"] = cache_dir
    return environment


def _run(arguments: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The command is this interpreter with the fixed programs of this module.
    return subprocess.run(  # noqa: S603
        [sys.executable, *arguments], capture_output=True, text=True, check=True, env=environment
    )


def _import_ms(prepare: str, statement: str, environment: dict[str, str]) -> float:
    program = _PROGRAM.format(prepare=prepare, statement=statement)
    return float(_run(["-c", program], environment).stdout.strip().splitlines()[-1])


def run_startup(
    *, rounds: int, labels: list[str] | None = None
) -> tuple[dict[str, Summary], list[tuple[str, float]]]:
    """Time each import over `rounds` fresh processes.

    Returns:
        Per import, the summary of its time in milliseconds, and the `import_breakdown` of
        ``import agentlease`` with the bytecode cache.
    """
    names = labels if labels is not None else list(IMPORTS)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="agentlease-bench-pycache-") as cache_dir:
        cached = _environment(cache_dir)
        uncached = _environment(None)
        for name in names:
            _import_ms(*IMPORTS[name], cached)
        for index in range(rounds):
            offset = index % len(names)
            for name in names[offset:] + names[:offset]:
                environment = uncached if name in _UNCACHED else cached
                per_round[name].append(_import_ms(*IMPORTS[name], environment))
        breakdown = import_breakdown("import agentlease", cached)
    return {name: summarize(values) for name, values in per_round.items()}, breakdown


def import_breakdown(
    statement: str, environment: dict[str, str], *, top: int = 10
) -> list[tuple[str, float]]:
    """Return the packages that take longest to import in `statement`, by self time in ms.

    One run with ``python -X importtime``, whose times include that option's own overhead. The
    modules of `agentlease` are grouped by subpackage, every other module by its top package.
    """
    completed = _run(["-X", "importtime", "-c", statement], environment)
    totals: dict[str, float] = {}
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_time, _, name = line.removeprefix("import time:").split("|")
        parts = name.strip().split(".")
        group = ".".join(parts[:2]) if parts[0].startswith("agentlease") else parts[0]
        totals[group] = totals.get(group, 0.0) + int(self_time) / 1000
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return ranked[:top]
