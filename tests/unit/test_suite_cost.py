"""``bench.suite_cost`` charges each process's CPU to the test its pytest process ran then."""

from __future__ import annotations

from bench.suite_cost import Samples, Span, charge, kind_of

WORKER = (10, "100")
SERVER = (11, "101")  # the worker's session Prefect server
RUN = (12, "102")  # a grandchild of the xdist worker: charged through the chain
ELSEWHERE = (20, "200")  # descends from no test process
A, B = "tests/e2e/test_x.py::test_a", "tests/e2e/test_x.py::test_b"


def samples(*used: tuple[float, tuple[int, str], float]) -> Samples:
    return Samples(
        parent={WORKER: None, SERVER: WORKER, RUN: SERVER, ELSEWHERE: None},
        command={
            WORKER: "python -u -c import sys;exec(eval(sys.stdin.readline()))",
            SERVER: "python prefect server start --port 1",
            RUN: "python -B -c from multiprocessing.forkserver import main",
            ELSEWHERE: "postgres: checkpointer",
        },
        used=list(used),
    )


SPANS = [Span(10, A, 0.0, 10.0), Span(10, B, 10.0, 20.0)]


def test_a_descendant_is_charged_to_the_test_running_in_its_pytest_process() -> None:
    cost = charge(samples((5.0, SERVER, 1.5), (15.0, RUN, 0.25), (15.5, WORKER, 0.5)), SPANS)
    assert cost[A] == {"Prefect server": 1.5}
    assert cost[B] == {"warm template and runs": 0.25, "pytest (xdist worker)": 0.5}


def test_what_no_test_ran_is_unattributed() -> None:
    cost = charge(samples((5.0, ELSEWHERE, 2.0), (40.0, SERVER, 1.0)), SPANS)
    assert set(cost) == {""}
    assert cost[""] == {"PostgreSQL": 2.0, "Prefect server": 1.0}


def test_a_process_forked_from_the_zygote_is_known_by_its_name() -> None:
    zygote = "/v/bin/python -m tests.fixtures.zygote "
    assert kind_of(zygote + "(prefect server)") == "Prefect server"
    assert kind_of(zygote + "(prefect worker)") == "Prefect worker"
    assert kind_of(zygote + "(python)") == "Prefect worker"  # the zygote itself
    assert kind_of("/v/bin/python /v/bin/prefect server start --port 1 (prefect)") == (
        "Prefect server"
    )
