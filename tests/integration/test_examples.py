"""Tests that run each example script and the notebook offline, as a user would.

The scripts run as subprocesses, and the notebook in a Jupyter kernel, with a temporary
directory as the working directory, so the audit log they write to
``.agentlease/demo-audit.jsonl`` lands there. They start their own scripted model server on
127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from agentlease.audit import read_log, verify_log

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = ["langchain_agent.py", "llamaindex_agent.py"]
NOTEBOOK = EXAMPLES / "llamaindex_agent.ipynb"
AUDIT_FILE = Path(".agentlease/demo-audit.jsonl")
KERNEL_NAME = "python3"
# Kernel launchers that jupyter_client replaces with sys.executable when it starts a kernel.
PYTHON_LAUNCHERS = {
    "python",
    f"python{sys.version_info[0]}",
    f"python{sys.version_info[0]}.{sys.version_info[1]}",
}


@dataclass(frozen=True)
class ScriptRun:
    """What one run of an example script left behind."""

    stdout: str
    stderr: str
    returncode: int
    audit_path: Path


def offline_environment() -> dict[str, str]:
    """Return the environment without agentlease settings, so the demos use their local server."""
    return {key: value for key, value in os.environ.items() if not key.startswith("AGENTLEASE_")}


@pytest.fixture(scope="module")
def run_script(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ScriptRun]:
    """Return a function that runs an example script once, from an empty working directory."""
    runs: dict[str, ScriptRun] = {}

    def run(script: str) -> ScriptRun:
        if script not in runs:
            workdir = tmp_path_factory.mktemp(script.removesuffix(".py"))
            completed = subprocess.run(
                [sys.executable, str(EXAMPLES / script)],
                cwd=workdir,
                env=offline_environment(),
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=600,
                check=False,
            )
            runs[script] = ScriptRun(
                stdout=completed.stdout,
                stderr=completed.stderr,
                returncode=completed.returncode,
                audit_path=workdir / AUDIT_FILE,
            )
        return runs[script]

    return run


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_exits_zero(run_script: Callable[[str], ScriptRun], script: str) -> None:
    result = run_script(script)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_prints_answer(run_script: Callable[[str], ScriptRun], script: str) -> None:
    stdout = run_script(script).stdout

    match = re.search(r"^Answer:\n  (.+)$", stdout, re.MULTILINE)
    assert match is not None, stdout
    assert "USD 1,296.00" in match.group(1)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_shows_denied_route(run_script: Callable[[str], ScriptRun], script: str) -> None:
    stdout = run_script(script).stdout

    denied = re.search(r"^  denied  route:fast .*\[data-class-clearance\]", stdout, re.MULTILINE)
    assert denied is not None, stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_shows_raised_data_class(
    run_script: Callable[[str], ScriptRun], script: str
) -> None:
    stdout = run_script(script).stdout

    assert "raised  data class internal -> confidential" in stdout, stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_revokes_every_grant(run_script: Callable[[str], ScriptRun], script: str) -> None:
    stdout = run_script(script).stdout

    match = re.search(r"^Grants: (\d+) minted, (\d+) revoked", stdout, re.MULTILINE)
    assert match is not None, stdout
    minted, revoked = int(match.group(1)), int(match.group(2))
    assert minted > 0
    assert revoked == minted


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_audit_log_verifies(run_script: Callable[[str], ScriptRun], script: str) -> None:
    report = verify_log(run_script(script).audit_path)

    assert report.sessions == 1
    assert report.records > 0


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_prints_audit_command(run_script: Callable[[str], ScriptRun], script: str) -> None:
    result = run_script(script)

    (session_id,) = {record.session_id for record in read_log(result.audit_path)}
    expected = f"uv run agentlease audit show {AUDIT_FILE} --session {session_id}"
    assert expected in result.stdout, result.stdout


def test_llamaindex_example_shows_denied_tool(run_script: Callable[[str], ScriptRun]) -> None:
    stdout = run_script("llamaindex_agent.py").stdout

    pattern = r"^  denied  tool:send_quote_email .*\[tool-high-risk-unverified\]"
    assert re.search(pattern, stdout, re.MULTILINE), stdout


def test_llamaindex_example_denial_reaches_agent(run_script: Callable[[str], ScriptRun]) -> None:
    stdout = run_script("llamaindex_agent.py").stdout

    assert "  Error: policy denied the call to tool 'send_quote_email'" in stdout, stdout


def test_llamaindex_example_finds_no_bypass(run_script: Callable[[str], ScriptRun]) -> None:
    stdout = run_script("llamaindex_agent.py").stdout

    pattern = r"instrumentation: [1-9]\d* framework records, 0 bypass findings"
    assert re.search(pattern, stdout), stdout


# -- the notebook ----------------------------------------------------------------------------


def runs_this_interpreter(argv: list[str]) -> bool:
    """Return whether a kernel started from `argv` runs the interpreter running the tests."""
    if not argv:
        return False
    if argv[0] in PYTHON_LAUNCHERS:
        return True
    return os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


@pytest.fixture(scope="module")
def kernel_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Make the ``python3`` kernel run this interpreter, installing a kernelspec if needed."""
    try:
        argv = KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv
    except NoSuchKernel:
        argv = []
    if runs_this_interpreter(argv):
        yield
        return

    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    install_kernelspec(kernel_name=KERNEL_NAME, prefix=str(prefix))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        yield


@dataclass(frozen=True)
class NotebookRun:
    """What one execution of the notebook left behind."""

    outputs: list[dict[str, Any]]
    audit_path: Path

    def stream_text(self) -> str:
        """Return everything the cells printed, in order."""
        streams = [output["text"] for output in self.outputs if output["output_type"] == "stream"]
        return "".join(streams)


@pytest.fixture(scope="module")
def notebook_run(kernel_environment: None, tmp_path_factory: pytest.TempPathFactory) -> NotebookRun:
    """Execute the notebook once, from an empty working directory."""
    workdir = tmp_path_factory.mktemp("notebook")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    )

    # The kernel inherits this process's environment, so agentlease settings are dropped to
    # make the notebook use its local server.
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("AGENTLEASE_"):
                patch.delenv(key)
        client.execute()

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    return NotebookRun(outputs=outputs, audit_path=workdir / AUDIT_FILE)


def test_notebook_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None


def test_notebook_prints_audit_tree(notebook_run: NotebookRun) -> None:
    text = notebook_run.stream_text()

    assert re.search(r"^session [0-9a-f]{32}  task=support-reply", text, re.MULTILINE), text
    assert "task.data_class_raised  node:account-c-1042" in text
    assert "tool.call  tool:send_quote_email  DENY [tool-high-risk-unverified]" in text
    assert "└── " in text


def test_notebook_displays_task_html(notebook_run: NotebookRun) -> None:
    html = [
        output["data"]["text/html"]
        for output in notebook_run.outputs
        if output["output_type"] == "display_data" and "text/html" in output["data"]
    ]

    assert len(html) == 1
    assert "support-reply" in html[0]
    assert "revoked" in html[0]
    assert "active" not in html[0]


def test_notebook_audit_log_verifies(notebook_run: NotebookRun) -> None:
    report = verify_log(notebook_run.audit_path)

    assert report.sessions == 1
    assert report.records > 0
