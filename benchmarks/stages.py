"""Stage benchmarks: what each step of a secured call costs on its own, and the floor below it.

The stages are minting a grant, verifying one, a cached grant (`Task.grant` hit), and one
Cedar decision with and without the decision cache. They also cover one audit append to a
JSONL file under the default fsync mode, ``flush``, which writes each record to the operating
system and fsyncs only on flush. The last stage is one ``chat`` span, with the OpenTelemetry
SDK and with the no-op API. The floor is one raw ES256 signature and one verification with
`cryptography`, and the same claims encoded and decoded with PyJWT, the libraries that
agentlease builds on.

Rounds alternate the stages in chunks of calls and time each call. A stage's figure for a round
is its median call. ``timer overhead`` times an empty call, the cost of the measurement
itself, which is included in every other figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracerProvider

import agentlease
from agentlease.audit import AuditLog
from agentlease.audit.record import CredentialInfo
from agentlease.grants import LocalBroker
from agentlease.messages import ChatRequest, Message, Usage
from agentlease.policy import CachingPolicyEngine, CedarEngine
from agentlease.telemetry import Telemetry
from benchmarks.harness import PROMPT, bench_route, build_runtime
from benchmarks.stats import Summary, interleave, summarize, time_calls

__all__ = ["STAGES", "run_stages"]

STAGES: dict[str, str] = {
    "timer": "timer overhead (empty call)",
    "mint": "mint a grant (LocalBroker.mint)",
    "verify": "verify a grant (GrantVerifier.verify)",
    "grant_cached": "cached grant (Task.grant hit)",
    "cedar": "Cedar decision, uncached (CedarEngine)",
    "cedar_cached": "Cedar decision, cached (CachingPolicyEngine hit)",
    "audit": "audit append, fsync 'flush', JSONL file",
    "span_sdk": "chat span, OpenTelemetry SDK (no exporter)",
    "span_noop": "chat span, no-op API",
    "floor_sign": "floor: ES256 sign (cryptography)",
    "floor_verify": "floor: ES256 verify (cryptography)",
    "floor_jwt_encode": "floor: jwt.encode ES256 (PyJWT)",
    "floor_jwt_decode": "floor: jwt.decode ES256 (PyJWT)",
}
"""Stage keys and their labels in the report, in report order."""


CHUNK = 50
"""Calls of one stage in a row before the next stage takes its turn."""


def _noop() -> None:
    return None


def _build_stages(
    work_dir: Path,
) -> tuple[dict[str, Callable[[], object]], Callable[[], None]]:
    route = bench_route("http://127.0.0.1:9/v1")
    broker = LocalBroker()
    runtime = build_runtime(route.base_url, work_dir / "stages-runtime.jsonl", broker=broker)
    scope = agentlease.task("bench-stages", runtime=runtime)
    task = scope.__enter__()
    task.grant(route.audience, "invoke_model")
    request = task.access_request("invoke_model", runtime.route_resource(route))

    grant = broker.mint(
        subject=task.identity.id,
        audience=route.audience,
        scope="invoke_model",
        task_id=task.id,
        data_class="internal",
        lifetime=300,
    )
    verifier = broker.verifier()

    cedar = CedarEngine()
    cached = CachingPolicyEngine(CedarEngine())
    cached.evaluate([request])

    audit = AuditLog.to_file(work_dir / "stages-audit.jsonl")
    credential = CredentialInfo.from_grant(grant)
    decision = cedar.evaluate([request])[0]
    usage = Usage(input_tokens=7, output_tokens=9)

    def append() -> object:
        return audit.append(
            session_id=task.id,
            task_name=task.name,
            action="model.call",
            actor=task.identity.id,
            resource=route.audience,
            decision=decision,
            credential=credential,
            usage=usage,
            attributes={"provider": "openai", "request_model": route.model, "stream": False},
        )

    sdk_provider = TracerProvider()
    sdk = Telemetry(sdk_provider)
    noop = Telemetry(NoOpTracerProvider())
    chat_request = ChatRequest(messages=[Message(role="user", content=PROMPT)])

    def span(telemetry: Telemetry) -> Callable[[], None]:
        def run() -> None:
            started = telemetry.start_chat_span(task, route, chat_request)
            telemetry.end_chat_span(started, usage=usage, response_model=route.model)

        return run

    floor_key = ec.generate_private_key(ec.SECP256R1())
    floor_public = floor_key.public_key()
    signing_input = grant.token.rsplit(".", 1)[0].encode("ascii")
    signature = floor_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    claims: dict[str, Any] = {
        "iss": grant.issuer,
        "sub": grant.subject,
        "aud": grant.audience,
        "exp": int(time.time()) + 300,
        "iat": int(time.time()),
        "nbf": int(time.time()),
        "jti": grant.jti,
        "scope": grant.scope,
        "client_id": grant.subject,
        "task_id": grant.task_id,
        "data_class": grant.data_class,
    }
    headers = {"typ": "at+jwt", "kid": "floor"}
    floor_token = jwt.encode(claims, floor_key, algorithm="ES256", headers=headers)

    stages: dict[str, Callable[[], object]] = {
        "timer": _noop,
        "mint": lambda: broker.mint(
            subject=task.identity.id,
            audience=route.audience,
            scope="invoke_model",
            task_id=task.id,
            data_class="internal",
            lifetime=300,
        ),
        "verify": lambda: verifier.verify(grant.token, audience=route.audience),
        "grant_cached": lambda: task.grant(route.audience, "invoke_model"),
        "cedar": lambda: cedar.evaluate([request]),
        "cedar_cached": lambda: cached.evaluate([request]),
        "audit": append,
        "span_sdk": span(sdk),
        "span_noop": span(noop),
        "floor_sign": lambda: floor_key.sign(signing_input, ec.ECDSA(hashes.SHA256())),
        "floor_verify": lambda: floor_public.verify(
            signature, signing_input, ec.ECDSA(hashes.SHA256())
        ),
        "floor_jwt_encode": lambda: jwt.encode(
            claims, floor_key, algorithm="ES256", headers=headers
        ),
        "floor_jwt_decode": lambda: jwt.decode(
            floor_token, floor_public, algorithms=["ES256"], audience=route.audience
        ),
    }

    def close() -> None:
        scope.__exit__(None, None, None)
        audit.close()
        runtime.close()
        sdk_provider.shutdown()

    return stages, close


def run_stages(work_dir: Path, *, rounds: int, calls: int, warmup: int) -> dict[str, Summary]:
    """Time every stage and return, per stage, the summary of its per-round medians in µs."""
    stages, close = _build_stages(work_dir)
    variants = {name: _timed(stage) for name, stage in stages.items()}
    try:
        for run in variants.values():
            run(warmup)
        per_round = interleave(variants, rounds=rounds, calls=calls, chunk=CHUNK)
    finally:
        close()
    return {name: summarize(values) for name, values in per_round.items()}


def _timed(stage: Callable[[], object]) -> Callable[[int], list[float]]:
    return lambda count: time_calls(stage, count)
