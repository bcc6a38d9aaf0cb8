"""`hopscope agent --auth kubernetes` under a flood of invented bearer tokens, on loopback.

A fake API server reviews every token in `--review-ms` (refusing all but the operator's); 16
threads send invented tokens as fast as the agent answers while the operator calls with its
token, reviewed once and then cached. Printed, not asserted: the operator's calls answered
(not 503/429), their latency, and the TokenReviews a second the agent sends the API server,
side by side with the agent without trusted addresses (an accepted token's address has no
lane ahead of the shared rate) and a baseline that has the agent's first order (a token waits
for one of the 4 authentication slots before its cached answer is read, and nothing bounds
the reviews).

`--addresses N` spreads the attackers over N loopback addresses (127.0.0.2 on; 0: the
operator's own), each within its own refusal budget; `--renew` has the operator present a new
token on every call, as after each renewal or cached answer run out: each needs a review.

    python bench/agent.py [--seconds 10] [--review-ms 20] [--attackers 16] [--addresses 0]
                          [--renew]
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


def call(port: int, token: str, source: str = "127.0.0.1") -> int | None:
    """The status of an authenticated-only call (405 once accepted); None: closed unanswered."""
    request = f"GET /v1/probe HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    address = ("127.0.0.1", port)
    with (
        contextlib.suppress(OSError),
        socket.create_connection(address, 10, source_address=(source, 0)) as sock,
    ):
        sock.sendall(request)
        return status_of(answer(sock))
    return None


def run(
    label: str,
    auth_type: type[KubernetesAuth],
    limits: dict,
    args,
    workdir: Path,
    trusting: bool = True,
) -> dict:
    workdir.mkdir()
    api, api_server = start_api(workdir)
    api.answers[OPERATOR_TOKEN] = Answer(authenticated(OPERATOR, [AUDIENCE]))
    api.default = Answer(delay=args.review_ms / 1000)
    own = workdir / "own-token"
    own.write_text("the-agents-own-token")
    reviewer = TokenReviewer(api.url, str(own), str(api.ca), AUDIENCE, OPERATOR, timeout=10)
    server = AgentServer(("127.0.0.1", 0), auth_type(reviewer), Limits(**limits))
    if not trusting:  # the agent before trusted addresses: no accepted address goes ahead
        server.auth_rate.accepted = lambda peer: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    call(port, OPERATOR_TOKEN)  # reviewed once: cached from now on
    stop = threading.Event()
    attacker_statuses: Counter[int | None] = Counter()

    def flood(source: str) -> None:
        while not stop.is_set():
            attacker_statuses[call(port, secrets.token_hex(16), source)] += 1

    sources = [
        f"127.0.0.{2 + n % args.addresses}" if args.addresses else "127.0.0.1"
        for n in range(args.attackers)
    ]
    threads = [threading.Thread(target=flood, args=(s,), daemon=True) for s in sources]
    for thread in threads:
        thread.start()
    reviews_before, started = len(api.requests), time.monotonic()
    answered, latencies, total = 0, [], 0
    while time.monotonic() - started < args.seconds:
        token = OPERATOR_TOKEN
        if args.renew:
            token = f"{OPERATOR_TOKEN}-{total}"
            api.answers[token] = Answer(authenticated(OPERATOR, [AUDIENCE]))
        t0 = time.monotonic()
        status = call(port, token)
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
    parser.add_argument("--addresses", type=int, default=0)
    parser.add_argument("--renew", action="store_true")
    args = parser.parse_args()
    if not 0 <= args.addresses <= 253:
        parser.error(f"--addresses {args.addresses}: 0 to 253 (127.0.0.2 on)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            run("hopscope agent", KubernetesAuth, {}, args, Path(tmp) / "a"),
            run("without trusted addresses", KubernetesAuth, {}, args, Path(tmp) / "u", False),
            run("baseline: slot first, unbounded", SlotFirst, UNBOUNDED, args, Path(tmp) / "b"),
        ]
    where = f"{args.addresses} addresses" if args.addresses else "the operator's address"
    renewed = ", the operator's token new on every call" if args.renew else ""
    print(
        f"{args.attackers} threads of invented tokens from {where}{renewed},"
        f" TokenReview {args.review_ms:g} ms"
    )
    for row in rows:
        print(
            f"{row['label']:34} operator answered {row['answered']}/{row['total']}"
            f" (p50 {row['p50']:.1f} ms, p99 {row['p99']:.1f} ms),"
            f" {row['reviews_per_s']:.0f} TokenReviews/s, attackers {row['attackers']}"
        )
    ours, _, base = rows
    print(
        f"ratio vs baseline: answered {ours['answered'] / ours['total']:.2f}"
        f" vs {base['answered'] / max(base['total'], 1):.2f};"
        f" TokenReviews/s x{ours['reviews_per_s'] / max(base['reviews_per_s'], 1e-9):.3f}"
    )


if __name__ == "__main__":
    main()
