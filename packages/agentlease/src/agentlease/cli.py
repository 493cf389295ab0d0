"""The ``agentlease`` command: review audit logs, list routes, check policies."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from agentlease._version import __version__
from agentlease.audit.cli import add_audit_commands, run_audit_command
from agentlease.config import load_settings
from agentlease.errors import AgentleaseError

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentlease",
        description="Workload identity, policy routing and audit for AI agents.",
    )
    parser.add_argument("--version", action="version", version=f"agentlease {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    add_audit_commands(commands)

    routes = commands.add_parser("routes", help="List the routes agentlease.toml declares.")
    routes.add_argument("--config", help="The configuration file (default: agentlease.toml).")

    policy = commands.add_parser("policy", help="Check policies against the shipped schema.")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="Load and validate the configured policies.")
    check.add_argument("--config", help="The configuration file (default: agentlease.toml).")
    return parser


def _routes(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    routes = settings.build_routes()
    if not routes:
        print(f"No routes declared in {settings.source or 'the embedded defaults'}.")
        return 0
    for route in routes:
        groups = ",".join(route.groups) or "-"
        print(
            f"{route.name}\t{route.model}\t{route.base_url}\tclearance={route.clearance}\t"
            f"jurisdiction={route.jurisdiction}\tcredential={route.credential}\tgroups={groups}"
        )
    return 0


def _policy_check(args: argparse.Namespace) -> int:
    from agentlease.runtime import _policy_from_settings  # pyright: ignore[reportPrivateUsage]

    settings = load_settings(args.config)
    _policy_from_settings(settings)
    print(f"Policies valid: {settings.policy.path or 'starter policies'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "audit":
            return run_audit_command(args)
        if args.command == "routes":
            return _routes(args)
        if args.command == "policy":
            return _policy_check(args)
    except AgentleaseError as exc:
        print(f"agentlease: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
