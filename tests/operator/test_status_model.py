"""The status is built from the result model: one definition of each shared field, one way back."""

from __future__ import annotations

import inspect

from hopscope_operator.api import ConnectivityCheckStatus
from hopscope_probe.models import (
    ConnectionStatus,
    DestinationInfo,
    Hop,
    HopType,
    Latency,
    ProbeResult,
    Protocol,
    RunFindings,
    SourceInfo,
)


def test_the_status_declares_none_of_the_results_fields_again() -> None:
    shared = set(RunFindings.model_fields)
    assert shared <= set(ProbeResult.model_fields) & set(ConnectivityCheckStatus.model_fields)
    for model in (ConnectivityCheckStatus, ProbeResult):
        assert not shared & set(inspect.get_annotations(model))  # inherited, not declared again


def test_a_result_written_as_status_reads_back_as_the_same_result() -> None:
    result = ProbeResult(
        connection_status=ConnectionStatus.REACHABLE,
        protocol=Protocol.TCP,
        source=SourceInfo(pod="web-0", node="worker-1", address="10.244.1.5"),
        destination=DestinationInfo(host="svc/db", port=5432, addresses=["10.96.0.10"]),
        latency=Latency(min_ms=1, avg_ms=1.5, max_ms=2),
        probes_sent=10,
        probes_failed=1,
        hops=[Hop(id="source", type=HopType.SOURCE, address="10.244.1.5", ttl=0)],
        path_fingerprint="abc",
    )
    status = ConnectivityCheckStatus.model_validate(
        {
            **result.findings(),
            "connection_status": result.connection_status,
            "source": result.source,
            "destination": {"addresses": result.destination.addresses},
        }
    )
    assert status.hop_count == 1
    assert status.as_result(Protocol.TCP, "svc/db", 5432) == result
