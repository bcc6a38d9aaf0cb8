"""`hopscope agent --auth kubernetes` under a flood of invented bearer tokens, on loopback.

A fake API server reviews every token in `--review-ms` (refusing all but the operator's); 16
threads send invented tokens as fast as the agent answers while the operator calls with its
token, reviewed once and then cached. Printed, not asserted: the operator's calls answered
(not 503/429), their latency, and the TokenReviews a second the agent sends the API server,
side by side with a baseline that has the agent's previous order (a token waits for one of
the 4 authentication slots before its cached answer is read, and nothing bounds the reviews).

    python bench/agent.py [--seconds 10] [--review-ms 20] [--attackers 16]
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hopscope_probe.agent import AgentServer, KubernetesAuth, Limits  # noqa: E402
from hopscope_probe.tokenreview import TokenReviewer  # noqa: E402
from tests.unit.test_agent_server import answer, status_of  # noqa: E402
from tests.unit.test_tokenreview import (  # noqa: E402
    AUDIENCE,
    OPERATOR,
    Answer,
    authenticated,
    start_api,
)

OPERATOR_TOKEN = "the-operators-projected-token"
UNBOUNDED = {"auth_checks_per_second": 1e9, "peer_refusals": 1e9}


class SlotFirst(KubernetesAuth):
    """The baseline: every token, cached or not, takes an authentication slot first."""

    def known(self, authorization: str | None) -> None:
        return None


def call(port: int, token: str) -> int | None:
    """The status of an authenticated-only call (405 once accepted); None: closed unanswered."""
    request = f"GET /v1/probe HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall(request)
        return status_of(answer(sock))
    return None


def run(label: str, auth_type: type[KubernetesAuth], limits: dict, args, workdir: Path) -> dict:
    workdir.mkdir()
    api, api_server = start_api(workdir)
    api.answers[OPERATOR_TOKEN] = Answer(authenticated(OPERATOR, [AUDIENCE]))
    api.default = Answer(delay=args.review_ms / 1000)
    own = workdir / "own-token"
    own.write_text("the-agents-own-token")
    reviewer = TokenReviewer(api.url, str(own), str(api.ca), AUDIENCE, OPERATOR, timeout=10)
    server = AgentServer(("127.0.0.1", 0), auth_type(reviewer), Limits(**limits))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    call(port, OPERATOR_TOKEN)  # reviewed once: cached from now on
    stop = threading.Event()
    attacker_statuses: Counter[int | None] = Counter()

    def flood() -> None:
        while not stop.is_set():
            attacker_statuses[call(port, secrets.token_hex(16))] += 1

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(args.attackers)]
    for thread in threads:
        thread.start()
    reviews_before, started = len(api.requests), time.monotonic()
    answered, latencies, total = 0, [], 0
    while time.monotonic() - started < args.seconds:
        t0 = time.monotonic()
        status = call(port, OPERATOR_TOKEN)
        latencies.append((time.monotonic() - t0) * 1000)
        total += 1
        answered += status == 405
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    reviews = len(api.requests) - reviews_before
    stop.set()
    api.release.set()
    for thread in threads:
        thread.join(5)
    server.shutdown()
    server.server_close()
    api_server.shutdown()
    api_server.server_close()
    latencies.sort()
    return {
        "label": label,
        "answered": answered,
        "total": total,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "reviews_per_s": reviews / elapsed,
        "attackers": dict(attacker_statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--review-ms", type=float, default=20)
    parser.add_argument("--attackers", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            run("hopscope agent", KubernetesAuth, {}, args, Path(tmp) / "a"),
            run("baseline: slot first, unbounded", SlotFirst, UNBOUNDED, args, Path(tmp) / "b"),
        ]
    print(f"{args.attackers} threads of invented tokens, TokenReview {args.review_ms:g} ms")
    for row in rows:
        print(
            f"{row['label']:34} operator answered {row['answered']}/{row['total']}"
            f" (p50 {row['p50']:.1f} ms, p99 {row['p99']:.1f} ms),"
            f" {row['reviews_per_s']:.0f} TokenReviews/s, attackers {row['attackers']}"
        )
    ours, base = rows
    print(
        f"ratio vs baseline: answered {ours['answered'] / ours['total']:.2f}"
        f" vs {base['answered'] / max(base['total'], 1):.2f};"
        f" TokenReviews/s x{ours['reviews_per_s'] / max(base['reviews_per_s'], 1e-9):.3f}"
    )


if __name__ == "__main__":
    main()
