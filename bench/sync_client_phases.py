"""The clinic-PC side of ``bench/sync_bench.py``: each phase runs in its own process, so its peak RSS is its own.

    .venv/bin/python bench/sync_client_phases.py PHASE < spec.json    (started by sync_bench.py)

A phase reads its parameters as one JSON object on stdin and prints its results as one JSON object on the
last line of stdout. It uses what the desktop app uses and nothing else: the SQLite store
(`desktop.store.open_local_store`), `PatientService`, `AuthService` (HPR OTP sign-in and enrolment against
the sandbox, as ``tests/e2e/conftest.py`` does) and `SyncClient.run_once` over `Transport`. The only
additions are an httpx event hook that counts requests and body bytes, reads of ``/proc`` for CPU time
and peak RSS (``VmHWM``), and time stamps of the steps of a live edits round (`_stamped_a`, `_stamped_b`;
PC B of a live round runs in a process of its own).

The sync modules and httpx are imported only by the phases that sync, so the ``coldstart`` phase imports
just what opening the store and searching needs.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from desktop.config import DesktopSettings
from desktop.services.patients import PatientService
from desktop.store import LocalStore, open_local_store

DEMO_DOCTOR_MOBILE = "+919810000001"  # Dr. Ananya Sharma, a doctor of the seeded demo clinic (sandbox HPR)
ACTOR = "bench"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
IMPORTED_AT = time.monotonic()  # interpreter start-up and the imports above are done (see phase_coldstart)


# --------------------------------------------------------------------------------------------- /proc


def proc_memory_kib(pid: int | str = "self") -> dict[str, int]:
    """``VmHWM`` (peak RSS) and ``VmRSS`` of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


# --------------------------------------------------------------------------------------------- a PC


class HttpMeter:
    """httpx event hooks: requests per route, body bytes each way, and when the first pull was sent.

    Bytes are HTTP bodies as sent (gzip when the transport compressed them) and as received (the
    ``Content-Length`` of the compressed answer); headers are not counted.
    """

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.routes: collections.Counter[str] = collections.Counter()
        self.sent = collections.Counter[str]()
        self.received = collections.Counter[str]()
        # (perf_counter, server CPU s, this process's CPU s) when the first pull is sent
        self.first_pull: tuple[float, float | None, float] | None = None

    def hooks(self) -> dict[str, list[Callable[[Any], None]]]:
        return {"request": [self._request], "response": [self._response]}

    def _route(self, method: str, path: str) -> str:
        return f"{method} {path}"

    def _request(self, request: Any) -> None:
        route = self._route(request.method, request.url.path)
        self.routes[route] += 1
        self.sent[route] += len(request.content)
        if self.first_pull is None and request.url.path.endswith("/sync/pull"):
            server_cpu = cpu_seconds(self.server_pid) if self.server_pid else None
            self.first_pull = (time.perf_counter(), server_cpu, cpu_seconds())

    def _response(self, response: Any) -> None:
        length = response.headers.get("content-length")
        route = self._route(response.request.method, response.request.url.path)
        self.received[route] += int(length) if length and length.isdigit() else 0

    def total(self) -> int:
        return sum(self.routes.values())

    def reset(self) -> None:
        self.routes.clear()
        self.sent.clear()
        self.received.clear()
        self.first_pull = None


class PC:
    """One clinic PC: its data folder and SQLite file, the production services, and (on demand) sync."""

    def __init__(
        self, data_dir: str, server: str | None = None, sandbox: str | None = None, server_pid: int | None = None
    ):
        self.settings = DesktopSettings(data_dir=Path(data_dir))
        self.store: LocalStore = open_local_store(self.settings.database_path, backups_dir=self.settings.backups_dir)
        self.patients = PatientService(writer=self.store.writer, uow=self.store.uow, clock=self.store.clock)
        self.server, self.sandbox = server, sandbox
        self.meter = HttpMeter(server_pid)
        self._transport: Any = None

    def transport(self) -> Any:
        if self._transport is None:
            import httpx

            from desktop.sync.transport import USER_AGENT, RetryPolicy, Transport

            http = httpx.Client(
                timeout=600, trust_env=False, headers={"User-Agent": USER_AGENT}, event_hooks=self.meter.hooks()
            )
            # One attempt: a failure must show, not be retried inside the timing.
            self._transport = Transport(self.server or "", http=http, retry=RetryPolicy(attempts=1))
        return self._transport

    def auth(self) -> Any:
        from desktop.services.auth import AuthService
        from desktop.sync.commands import device_secrets

        return AuthService(self.store.uow, device_secrets(self.settings), lambda _url: self.transport())

    def enroll(self, name: str) -> uuid.UUID:
        """HPR OTP sign-in through the sandbox and enrolment for the demo clinic, as a user would; the signed-in
        doctor's user id."""
        import httpx

        assert self.server and self.sandbox
        auth = self.auth()
        txn_id, _ = auth.start_sign_in(self.server, DEMO_DOCTOR_MOBILE)
        outbox = httpx.get(
            f"{self.sandbox}/sandbox/otp-outbox", params={"mobile": DEMO_DOCTOR_MOBILE}, trust_env=False
        ).json()
        user = auth.finish_sign_in(self.server, txn_id, str(outbox[0]["otp"]), pc_name=name)
        return uuid.UUID(str(user.user_id))

    def encounters(self) -> Any:
        from desktop.services.encounters import EncounterService

        return EncounterService(writer=self.store.writer, uow=self.store.uow, clock=self.store.clock)

    def encounter_count(self) -> dict[str, int]:
        """Encounters on this PC by status (the bench's check; no service lists them all)."""
        import sqlalchemy as sa

        with self.store.uow.read() as uow:
            rows = uow.connection.execute(sa.text("SELECT status, count(*) FROM encounters GROUP BY status")).all()
        return {str(status): int(count) for status, count in rows}

    def client(self, *, batch_size: int = 500, page_size: int = 1000) -> Any:
        from desktop.sync.client import SyncClient

        auth = self.auth()
        enrolment, token = auth.enrolment(), auth.device_token()
        assert enrolment is not None and token is not None, "PC not enrolled"
        transport = self.transport()
        transport.use_device(enrolment.device_id, token)
        return SyncClient(
            self.store.uow,
            transport,
            self.store.clock,
            device_id=enrolment.device_id,
            batch_size=batch_size,
            page_size=page_size,
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self.store.close()


def _records(path: str, n: int) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n:
                return
            yield json.loads(line)


def _ids(path: str, n: int) -> list[uuid.UUID]:
    return [uuid.UUID(r["id"]) for r in _records(path, n)]


def _finish(result: dict[str, Any], cpu0: float) -> dict[str, Any]:
    mem = proc_memory_kib()
    result["client_cpu_s"] = round(cpu_seconds() - cpu0, 2)
    result["client_peak_rss_mib"] = _mib(mem["VmHWM"])
    result["client_rss_end_mib"] = _mib(mem["VmRSS"])
    return result


def _split(meter: HttpMeter, pull: bool) -> dict[str, int]:
    routes = [r for r in meter.routes if r.endswith("/sync/pull") == pull]
    return {
        "requests": sum(meter.routes[r] for r in routes),
        "sent_bytes": sum(meter.sent[r] for r in routes),
        "received_bytes": sum(meter.received[r] for r in routes),
    }


# --------------------------------------------------------------------------------------------- profiling

PULL_PROFILE_ENV = "INTEGMED_BENCH_PULL_PROFILE"
"""Opt-in (`sync_bench.py --profile-pull`): ``threads`` reports the pull round's CPU by thread; a path prefix
also samples the round with py-spy into ``PREFIX-p<page size>.txt`` (collapsed stacks, thread ids, native
frames). Off by default: the per-thread sampling reads ``/proc`` every 50 ms."""


CLIENT_GC_ENV = "INTEGMED_BENCH_CLIENT_GC"
"""``app`` (`sync_bench.py --client-gc app`): the pull round runs under the desktop app's collector regime
(`_app_collector`); unset or ``python``: Python's automatic collection, as in a plain process."""
APP_GC_INTERVAL_S = 0.5  # desktop.ui.gc_guard.GuiThreadCollector's default interval


@contextlib.contextmanager
def _app_collector(on: bool) -> Iterator[None]:
    """The desktop app's cycle-collector regime for the block: `desktop.ui.gc_guard.GuiThreadCollector` turns
    automatic collection off and every 500 ms collects the oldest generation whose count passed its threshold,
    on the GUI thread. Here a timer thread applies the same rule (this process has no Qt event loop; importing
    PySide6 would add its memory to the phase's peak RSS); a collection costs the same CPU on either thread."""
    if not on:
        yield
        return
    thresholds = gc.get_threshold()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(APP_GC_INTERVAL_S):
            counts = gc.get_count()
            for generation in (2, 1, 0):
                if counts[generation] > thresholds[generation]:
                    gc.collect(generation)
                    break

    timer = threading.Thread(target=tick, name="bench-app-gc", daemon=True)
    gc.disable()
    timer.start()
    try:
        yield
    finally:
        stop.set()
        timer.join()
        gc.enable()


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each live thread of this process, by native thread id, with its name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            tid = int(task.name)
            out[tid] = (names.get(tid, "?"), (int(fields[11]) + int(fields[12])) / _CLK_TCK)
    return out


@contextlib.contextmanager
def _profiled(on: bool, prefix: str | None) -> Iterator[dict[str, float]]:
    """With ``on``, CPU seconds of the block by thread name (threads that end inside the block are read every
    50 ms, so up to 50 ms of theirs is missed), and with ``prefix`` a py-spy recording of it."""
    import signal
    import subprocess

    totals: dict[str, float] = {}
    if not on:
        yield totals
        return
    spy = None
    if prefix:
        out = f"{prefix}.txt"
        argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--native", "--threads", "--format", "raw"]
        argv += ["--rate", "250", "--output", out, "--pid", str(os.getpid())]
        spy = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # attached
    before = _thread_cpu()
    seen: dict[int, tuple[str, float]] = dict(before)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            seen.update(_thread_cpu())

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    started: dict[int, float] = {}
    collected = [0.0, 0, 0, 0]  # CPU s in the collector, collections of generation 0, 1, 2

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[threading.get_ident()] = time.thread_time()
        elif (t0 := started.pop(threading.get_ident(), None)) is not None:
            collected[0] += time.thread_time() - t0
            collected[1 + info["generation"]] += 1

    gc.callbacks.append(collector)
    sampler.start()
    try:
        yield totals
    finally:
        gc.callbacks.remove(collector)
        totals["gc (in the threads above)"] = round(collected[0], 3)
        totals["gc collections 0/1/2"] = collected[1:]  # type: ignore[assignment]
        stop.set()
        sampler.join()
        seen.update(_thread_cpu())
        for tid, (name, cpu) in seen.items():
            if name == "bench-sampler":
                continue
            key = name.rsplit("_", 1)[0] if name.startswith("integmed-") else name
            totals[key] = round(totals.get(key, 0.0) + cpu - before.get(tid, (name, 0.0))[1], 3)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)


# --------------------------------------------------------------------------------------------- phases


def phase_write(spec: dict[str, Any]) -> dict[str, Any]:
    """Enrol a fresh PC (untimed), then write N patients: one `register` each, or one CSV import."""
    cpu0 = cpu_seconds()
    pc = PC(spec["data_dir"], spec["server"], spec["sandbox"])
    try:
        doctor = pc.enroll(spec["name"])
        n, patients = spec["n"], spec.get("patients", spec["n"])
        mixed = spec.get("records_jsonl")
        encounters = pc.encounters()
        t0 = time.perf_counter()
        if spec["mode"] == "import":
            report = pc.patients.import_csv(Path(spec["csv"]), actor=ACTOR)
            assert report.ok and report.created == patients, report.summary()
        if mixed is None:
            if spec["mode"] == "register":
                for record in _records(spec["jsonl"], n):
                    pc.patients.register(record, ACTOR)
        else:  # gen.js order: a patient, then its encounters; each encounter started, then completed
            for record in _records(mixed, n):
                if record["kind"] == "patient":
                    if spec["mode"] == "register":
                        pc.patients.register(record["fields"], ACTOR)
                    continue
                started = encounters.start(record["create"], doctor)
                if record["complete"]:
                    encounters.complete(started.id)
        seconds = time.perf_counter() - t0
        assert pc.patients.count() == patients
        assert sum(pc.encounter_count().values()) == spec.get("encounters", 0)
    finally:
        pc.close()
    db_bytes = sum(p.stat().st_size for p in Path(spec["data_dir"]).glob("*.sqlite3*"))
    return _finish(
        {"mode": spec["mode"], "n": n, "seconds": seconds, "rec_per_s": n / seconds, "db_bytes": db_bytes}, cpu0
    )


def phase_push(spec: dict[str, Any]) -> dict[str, Any]:
    """One `run_once` on the PC that wrote N patients: push them all, then pull the feed (its own echoes).

    Push time runs from the start of the round to the moment the first pull request is sent.
    """
    cpu0 = cpu_seconds()
    pc = PC(spec["data_dir"], spec["server"], spec["sandbox"], spec["server_pid"])
    server_pid = spec["server_pid"]
    try:
        client = pc.client(batch_size=spec["batch_size"])
        s0 = cpu_seconds(server_pid)
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        report = client.run_once()
        t1 = time.perf_counter()
        c1, s1 = cpu_seconds(), cpu_seconds(server_pid)
        assert pc.meter.first_pull is not None
        t_pull, s_pull, c_pull = pc.meter.first_pull
        assert s_pull is not None
        n, changes = spec["n"], spec.get("changes", spec["n"])
        assert report.applied + report.merged == changes and not report.rejected and report.pending == 0, report
    finally:
        pc.close()
    push_s = t_pull - t0
    return _finish(
        {
            "n": n,
            "changes": changes,
            "applied": report.applied,
            "merged": report.merged,
            "batch_size": spec["batch_size"],
            "push_s": push_s,
            "push_rec_per_s": n / push_s,
            "push_http": _split(pc.meter, pull=False),
            "push_server_cpu_s": round(s_pull - s0, 2),
            "push_client_cpu_s": round(c_pull - c0, 2),
            "echo_pull_s": t1 - t_pull,
            "echo_pulled": report.pulled,
            "echo_http": _split(pc.meter, pull=True),
            "echo_server_cpu_s": round(s1 - s_pull, 2),
            "round_s": t1 - t0,
            "round_client_cpu_s": round(c1 - c0, 2),
        },
        cpu0,
    )


def phase_pull(spec: dict[str, Any]) -> dict[str, Any]:
    """Enrol a fresh PC (untimed), then one `run_once`: the initial pull of the clinic's N patients."""
    cpu0 = cpu_seconds()
    server_pid = spec["server_pid"]
    pc = PC(spec["data_dir"], spec["server"], spec["sandbox"], server_pid)
    try:
        pc.enroll(spec["name"])
        client = pc.client(page_size=spec["page_size"])
        pc.meter.reset()
        profile = os.environ.get(PULL_PROFILE_ENV)
        prefix = f"{profile}-p{spec['page_size']}" if profile and profile != "threads" else None
        app_gc = os.environ.get(CLIENT_GC_ENV) == "app"
        with _app_collector(app_gc), _profiled(profile is not None, prefix) as threads_cpu:
            s0, c0 = cpu_seconds(server_pid), cpu_seconds()
            t0 = time.perf_counter()
            report = client.run_once()
            seconds = time.perf_counter() - t0
            c1, s1 = cpu_seconds(), cpu_seconds(server_pid)
        n = spec["n"]
        assert report.pulled == n and report.inserted == n, report
        assert pc.patients.count() == spec.get("patients", n)
        held = pc.encounter_count()
        assert sum(held.values()) == spec.get("encounters", 0), held
    finally:
        pc.close()
    http = {"requests": pc.meter.total(), "sent_bytes": sum(pc.meter.sent.values())}
    http["received_bytes"] = sum(pc.meter.received.values())
    return _finish(
        {
            "n": n,
            "page_size": spec["page_size"],
            "seconds": seconds,
            "rec_per_s": n / seconds,
            "pages": report.pages,
            "encounters": held,
            "http": http,
            "routes": dict(pc.meter.routes),
            "server_cpu_s": round(s1 - s0, 2),
            "round_client_cpu_s": round(c1 - c0, 2),
            "round_client_threads_cpu_s": threads_cpu,
            "client_gc": "app" if app_gc else "python",
        },
        cpu0,
    )


def phase_noop(spec: dict[str, Any]) -> dict[str, Any]:
    """`run_once` rounds with nothing to send or receive: latency and HTTP requests per round."""
    cpu0 = cpu_seconds()
    pc = PC(spec["data_dir"], spec["server"], spec["sandbox"])
    try:
        client = pc.client()
        for _ in range(spec["warmup"]):
            client.run_once()
        ms, requests = [], []
        routes: collections.Counter[str] = collections.Counter()
        for _ in range(spec["rounds"]):
            pc.meter.reset()
            t0 = time.perf_counter()
            report = client.run_once()
            ms.append((time.perf_counter() - t0) * 1000)
            assert report.pushed == 0 and report.pulled == 0 and report.caught_up, report
            requests.append(pc.meter.total())
            routes.update(pc.meter.routes)
    finally:
        pc.close()
    return _finish({"ms": ms, "requests": requests, "routes": dict(routes)}, cpu0)


def _new_mobile(mobile: str, round_no: int) -> str:
    local = mobile[3:]
    candidate = "9" + local[1:9] + str(round_no)
    return "+91" + (candidate if candidate != local else "8" + candidate[1:])


def phase_edits(spec: dict[str, Any]) -> dict[str, Any]:
    """Rounds of: 100 edits on PC A (mobile numbers, one `update` each), then A syncs, then B syncs.

    The clock runs from A's `run_once` to the end of B's; afterwards B must hold every new value.
    """
    cpu0 = cpu_seconds()
    n, edits = spec.get("patients", spec["n"]), spec["edits"]
    ids = _ids(spec["jsonl"], n)  # the records' patients (edits are patient edits in either mix)
    a = PC(spec["a_dir"], spec["server"], spec["sandbox"])
    b = PC(spec["b_dir"], spec["server"], spec["sandbox"])
    rounds = []
    live: dict[str, Any] = {}
    try:
        client_a, client_b = a.client(), b.client()
        client_a.run_once()
        client_b.run_once()  # both caught up and holding access tokens, as a running app would be
        step = max(1, n // edits)
        for round_no in range(spec["rounds"]):
            chosen = [ids[(k * step + round_no * 7 + 1) % n] for k in range(edits)]
            expected = {}
            t0 = time.perf_counter()
            for patient_id in chosen:
                mobile = _new_mobile(a.patients.get(patient_id).mobile or "+919000000000", round_no)
                a.patients.update(patient_id, {"mobile": mobile}, ACTOR)
                expected[patient_id] = mobile
            t1 = time.perf_counter()
            a.meter.reset()
            b.meter.reset()
            report_a = client_a.run_once()
            t2 = time.perf_counter()
            report_b = client_b.run_once()
            t3 = time.perf_counter()
            assert report_a.pushed == edits and report_a.applied == edits, report_a
            assert report_b.pulled == edits, report_b
            seen = {p.id: p.mobile for p in b.patients.rows_for(chosen)}
            assert seen == expected, "B does not show A's edits"
            rounds.append(
                {
                    "local_edit_ms": (t1 - t0) * 1000,
                    "a_sync_ms": (t2 - t1) * 1000,
                    "b_sync_ms": (t3 - t2) * 1000,
                    "visible_ms": (t3 - t1) * 1000,
                    "a_requests": a.meter.total(),
                    "b_requests": b.meter.total(),
                    "a_echoes_pulled": report_a.pulled,
                }
            )
        # The same edits with B idle as the desktop's sync worker keeps it: a waiting pull open
        # (`SyncClient.watch`), A syncing as after a local write. Clock: A's `run_once` starts -> B's watch has
        # applied the page. Also for a single edit (the "someone fixed a mobile at reception" case). B runs in
        # a process of its own, as the other PC it stands for (in one process B's apply and A's echo pull
        # shared one interpreter lock: ``"b_process": false`` measures that way).
        separate = spec.get("b_process", True)
        if separate:
            b.close()
            other: Any = _OtherPC(spec)
        else:
            other = _SamePC(b, client_b)
        try:
            for count, key in ((edits, "live_rounds"), (1, "live_single")):
                out: list[dict[str, float]] = []
                for round_no in range(spec["rounds"]):
                    offset = 1000 * round_no + (17 if count == 1 else 3)
                    out.append(_live_round(a, client_a, other, ids, count, (5 + round_no) % 10, offset))
                live[key] = out
        finally:
            other.close()
        live["b_process"] = separate
    finally:
        a.close()
        if not separate:
            b.close()
    return _finish({"edits": edits, "rounds": rounds} | live, cpu0)


def _now() -> float:
    """A clock two processes agree on (CLOCK_MONOTONIC), for the steps of a live round."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def _watch_once(b: PC, client_b: Any, chosen: list[uuid.UUID], ready: Callable[[], None]) -> dict[str, Any]:
    """B's side of a live round: open its waiting pull, say so, and return when the page is applied."""
    from concurrent.futures import ThreadPoolExecutor

    stamps: dict[str, float] = {}
    with ThreadPoolExecutor(1) as pool, _stamped_b(client_b, stamps):
        watching = pool.submit(lambda: (client_b.watch(20), _now()))
        time.sleep(0.3)  # let B's waiting pull reach the server (the worker keeps it open all the time)
        ready()
        report, applied = watching.result(timeout=60)
    seen = {str(p.id): p.mobile for p in b.patients.rows_for(chosen)}
    return {"pulled": report.pulled, "applied_at": applied, "stamps": stamps, "seen": seen}


class _SamePC:
    """PC B in this process (a thread runs its waiting pull)."""

    def __init__(self, b: PC, client_b: Any) -> None:
        self.b, self.client_b = b, client_b
        self._pending: Any = None

    def start(self, chosen: list[uuid.UUID]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1)
        ready = threading.Event()
        self._pending = self._pool.submit(_watch_once, self.b, self.client_b, chosen, ready.set)
        ready.wait(30)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = self._pending.result(timeout=60)
        self._pool.shutdown()
        return out

    def close(self) -> None:
        pass


def _other_pc_main(conn: Any, spec: dict[str, Any]) -> None:
    """PC B in a process of its own: one live round per message (the ids to watch), until None."""
    b = PC(spec["b_dir"], spec["server"], spec["sandbox"])
    try:
        client_b = b.client()
        while (chosen := conn.recv()) is not None:
            conn.send(_watch_once(b, client_b, [uuid.UUID(c) for c in chosen], lambda: conn.send("ready")))
    finally:
        b.close()


class _OtherPC:
    """PC B in a child process (started once for all live rounds)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # this process has threads: no fork
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_other_pc_main, args=(child, spec), daemon=True)
        self._proc.start()

    def start(self, chosen: list[uuid.UUID]) -> None:
        self._conn.send([str(c) for c in chosen])
        assert self._conn.poll(60) and self._conn.recv() == "ready", "PC B did not open its waiting pull"

    def result(self) -> dict[str, Any]:
        assert self._conn.poll(60), "PC B did not apply the page"
        out: dict[str, Any] = self._conn.recv()
        return out

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(30)


def _live_round(
    a: PC, client_a: Any, other: Any, ids: list[uuid.UUID], count: int, digit: int, offset: int
) -> dict[str, float]:
    n = len(ids)
    step = max(1, n // count)
    chosen = [ids[(k * step + offset) % n] for k in range(count)]
    expected = {}
    for patient_id in chosen:
        mobile = _new_mobile(a.patients.get(patient_id).mobile or "+919000000000", digit)
        a.patients.update(patient_id, {"mobile": mobile}, ACTOR)
        expected[str(patient_id)] = mobile
    stamps: dict[str, float] = {}
    other.start(chosen)
    with _stamped_a(client_a, stamps):
        t1 = _now()
        report_a = client_a.run_once()
        t2 = _now()
    b_side = other.result()
    assert report_a.applied == count, report_a
    assert b_side["pulled"] == count, b_side
    assert b_side["seen"] == expected, "B does not show A's edits"
    stamps |= b_side["stamps"]
    # Where the time goes (ms from A's `run_once` start): A's body ready, A's push sent / answered, B's answer
    # read off the socket, B's page parsed, B's page applied.
    return {"a_round_ms": (t2 - t1) * 1000, "visible_ms": (b_side["applied_at"] - t1) * 1000} | {
        k: (v - t1) * 1000 for k, v in stamps.items()
    }


def _wrap(obj: Any, name: str, before: str | None, after: str, stamps: dict[str, float]) -> None:
    """Stamp (first occurrence) the start and the end of ``obj.name``, on the instance only (the code timed
    is the production code)."""
    inner = getattr(obj, name)

    def timed(*args: Any, **kw: Any) -> Any:
        if before:
            stamps.setdefault(before, _now())
        result = inner(*args, **kw)
        stamps.setdefault(after, _now())
        return result

    setattr(obj, name, timed)


@contextlib.contextmanager
def _stamped_a(client_a: Any, stamps: dict[str, float]) -> Iterator[None]:
    """Time stamps of PC A's steps of a live round."""
    wrapped = ((client_a, "_encode"), (client_a._transport, "push_encoded"), (client_a, "_pull_all"))
    _wrap(client_a, "_encode", "a_encode_start", "a_encoded", stamps)
    _wrap(client_a._transport, "push_encoded", "a_push_sent", "a_push_answered", stamps)
    _wrap(client_a, "_pull_all", "a_echo_pull_start", "a_echo_pull_done", stamps)
    try:
        yield
    finally:
        for obj, name in wrapped:
            obj.__dict__.pop(name, None)


@contextlib.contextmanager
def _stamped_b(client_b: Any, stamps: dict[str, float]) -> Iterator[None]:
    """Time stamps of PC B's steps of a live round."""
    _wrap(client_b, "_apply_if_cursor", "b_parsed", "b_applied", stamps)
    wait_http = client_b._transport._wait_http
    if wait_http is not None:
        _wrap(wait_http, "get", None, "b_answer_read", stamps)
    try:
        yield
    finally:
        client_b.__dict__.pop("_apply_if_cursor", None)
        if wait_http is not None:
            wait_http.__dict__.pop("get", None)


def phase_search(spec: dict[str, Any]) -> dict[str, Any]:
    """`PatientService.search` over the query mix, after a warm-up, on a PC holding the search set."""
    cpu0 = cpu_seconds()
    pc = PC(spec["data_dir"])
    samples = []
    try:
        count = pc.patients.count()
        for query in spec["warmup"]:
            pc.patients.search(query["q"], spec["limit"])
        for query in spec["queries"]:
            t0 = time.perf_counter()
            found = pc.patients.search(query["q"], spec["limit"])
            ms = (time.perf_counter() - t0) * 1000
            hit = None
            if query.get("expect_id"):
                hit = any(str(p.id) == query["expect_id"] for p in found)
            elif query.get("expect_name"):
                hit = any(p.name.casefold() == query["expect_name"].casefold() for p in found)
            samples.append({"kind": query["kind"], "ms": ms, "results": len(found), "found": hit})
    finally:
        pc.close()
    return _finish({"patients": count, "limit": spec["limit"], "samples": samples}, cpu0)


def phase_build_search_store(spec: dict[str, Any]) -> dict[str, Any]:
    """A PC with the search set: one CSV import (one transaction) into a fresh, unenrolled store."""
    cpu0 = cpu_seconds()
    pc = PC(spec["data_dir"])
    try:
        t0 = time.perf_counter()
        report = pc.patients.import_csv(Path(spec["csv"]), actor=ACTOR)
        seconds = time.perf_counter() - t0
        assert report.ok and report.created == spec["n"], report.summary()
    finally:
        pc.close()
    db_bytes = sum(p.stat().st_size for p in Path(spec["data_dir"]).glob("*.sqlite3*"))
    return _finish({"n": spec["n"], "seconds": seconds, "rec_per_s": spec["n"] / seconds, "db_bytes": db_bytes}, cpu0)


def phase_coldstart(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the store and run the first search, in a fresh process that imported only the desktop store.

    Times are on the system-wide monotonic clock, so the parent can count from the moment it spawned this
    process (``spawned_at``): start-up + imports (desktop.config, desktop.store, desktop.services.patients:
    pydantic, SQLAlchemy), then `open_local_store`, then the first search.
    """
    t0 = time.perf_counter()
    settings = DesktopSettings(data_dir=Path(spec["data_dir"]))  # what app start-up does first
    store = open_local_store(settings.database_path, backups_dir=settings.backups_dir)
    t1 = time.perf_counter()
    try:
        service = PatientService(writer=store.writer, uow=store.uow, clock=store.clock)
        found = service.search(spec["query"], spec["limit"])
        t2 = time.perf_counter()
    finally:
        store.close()
    return {
        "open_store_ms": (t1 - t0) * 1000,
        "first_search_ms": (t2 - t1) * 1000,
        "results": len(found),
        "startup_and_imports_ms": (IMPORTED_AT - spec["spawned_at"]) * 1000,
        "total_ms": (time.monotonic() - spec["spawned_at"]) * 1000,
        "client_peak_rss_mib": _mib(proc_memory_kib()["VmHWM"]),
    }


def phase_coldstart_window(spec: dict[str, Any]) -> dict[str, Any]:
    """The desktop app's start-up (``desktop.app``) under ``QT_QPA_PLATFORM=offscreen``, in a fresh process.

    Marks, from the parent's spawn: imports done (Qt and the app), store open, first window shown
    (`DesktopApp.start` shows the unlock dialog on an enrolled PC with users, else the setup window), then the
    main window shown. The main window is built as ``DesktopApp`` builds it after a successful unlock (the
    bench does not type a PIN). Shown means ``show()`` returned and the pending events were processed.
    """
    from PySide6.QtWidgets import QApplication

    from desktop import app as desktop_app
    from desktop.ui.error_dialogs import ErrorPresenter
    from desktop.ui.main_window import MainWindow

    spawned = spec["spawned_at"]
    imported = time.monotonic()
    settings = DesktopSettings(data_dir=Path(spec["data_dir"]))
    qt = QApplication(["integmed"])
    desktop_app.prepare_application(qt)
    store = open_local_store(settings.database_path, backups_dir=settings.backups_dir)
    opened = time.monotonic()
    desktop = desktop_app.DesktopApp(settings, store, error_presenter=ErrorPresenter(None))
    try:
        desktop.start()
        deadline = time.monotonic() + 30
        while desktop.unlock_dialog is None and desktop.setup_window is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no first window within 30 s")
            qt.processEvents()
            time.sleep(0.001)
        qt.processEvents()
        first_window = time.monotonic()
        first = "unlock" if desktop.unlock_dialog is not None else "setup"
        window = MainWindow(
            desktop.runner,
            desktop.patients,
            desktop.sync_worker,
            user_name="Bench",
            actor="bench",
            error_presenter=desktop.present_error,
        )
        window.resize(1366, 768)
        window.show()
        qt.processEvents()
        main_window = time.monotonic()
        window.close()
    finally:
        desktop.close()
        store.close()
    return {
        "startup_and_imports_ms": (imported - spawned) * 1000,
        "open_store_ms": (opened - imported) * 1000,
        "first_window": first,
        "first_window_ms": (first_window - spawned) * 1000,
        "main_window_ms": (main_window - spawned) * 1000,
        "client_peak_rss_mib": _mib(proc_memory_kib()["VmHWM"]),
    }


PHASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "write": phase_write,
    "push": phase_push,
    "pull": phase_pull,
    "noop": phase_noop,
    "edits": phase_edits,
    "search": phase_search,
    "build_search_store": phase_build_search_store,
    "coldstart": phase_coldstart,
    "coldstart_window": phase_coldstart_window,
}


def main() -> int:
    started = time.monotonic()
    phase = PHASES[sys.argv[1]]
    spec = json.loads(sys.stdin.read())
    result = phase(spec)
    result["phase_wall_s"] = time.monotonic() - started
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
