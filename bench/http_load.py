"""The load generator of ``bench.http_api``: keep-alive HTTP/1.1 clients in threads.

Each client is a thread with its own TCP connection to 127.0.0.1, speaking
HTTP/1.1 with keep-alive over a plain socket (no http.client: its header
parsing and object churn would cost the 2-core machine as much CPU as a
small server). Requests are pre-encoded bytes; the response is read to its
Content-Length (or chunked end) and its status checked. When the server
closes the connection (``Connection: close`` from a sync worker, or an idle
keep-alive timeout) the client reconnects, and the reconnection is part of
the measured latency.

Every phase is bounded twice: at most ``max_requests`` requests in total and
at most ``max_seconds`` of wall time. Per request the latency (send to last
byte) is recorded; the CPU time the whole client process spent during the
phase is measured with ``time.process_time`` so that its share of the
machine can be reported beside the server's.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")


class HttpError(Exception):
    """A response that was not what the phase expected."""


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the benchmark only talks to the loopback interface")
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.connects = 0

    def _connect(self) -> None:
        self.close()
        sock = socket.create_connection(self.address, timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.buffer = b""
        self.connects += 1

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-encoded request; return (status, body)."""
        fresh = self.sock is None
        if fresh:
            self._connect()
        try:
            self.sock.sendall(raw)
            return self._response()
        except (ConnectionError, _Closed):
            if fresh:
                raise
            # The server closed an idle keep-alive connection before reading
            # this request: nothing was processed, so sending it again is safe.
            self._connect()
            self.sock.sendall(raw)
            return self._response()

    def _recv(self) -> bytes:
        data = self.sock.recv(262144)
        if not data:
            raise _Closed()
        return data

    def _response(self) -> tuple[int, bytes]:
        buf = self.buffer
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            buf += self._recv()
        head = buf[:end].decode("latin-1")
        buf = buf[end + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            body, buf = self._chunked(buf)
        elif length is not None:
            while len(buf) < length:
                buf += self._recv()
            body, buf = buf[:length], buf[length:]
        else:  # read to close
            parts = [buf]
            try:
                while True:
                    parts.append(self._recv())
            except _Closed:
                pass
            body, buf, close = b"".join(parts), b"", True
        self.buffer = buf
        if close:
            self.close()
        return status, body

    def _chunked(self, buf: bytes) -> tuple[bytes, bytes]:
        body = []
        while True:
            while b"\r\n" not in buf:
                buf += self._recv()
            line, buf = buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf += self._recv()
            if size == 0:
                # trailers are not used by the servers measured here
                return b"".join(body), buf[2:]
            body.append(buf[:size])
            buf = buf[size + 2:]


class _Closed(Exception):
    pass


def encode(method: str, path: str, body=None, token: str | None = None,
           host: str = "127.0.0.1") -> bytes:
    """Return the bytes of one HTTP/1.1 request (JSON body if any)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def call(port: int, method: str, path: str, body=None, token: str | None = None,
         expect=(200, 201)) -> dict:
    """One request on a fresh connection (setup steps, not measured); return the JSON body."""
    conn = Connection(port)
    try:
        status, data = conn.request(encode(method, path, body, token))
    finally:
        conn.close()
    if status not in expect:
        raise HttpError(f"{method} {path}: {status} {data[:500]!r}")
    return json.loads(data) if data else {}


# -- CPU accounting ---------------------------------------------------------------------

def proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process, zeros if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def children_of(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


class CpuMeter:
    """CPU used during a phase: this process, named process groups, the whole machine."""

    def __init__(self, groups: dict[str, callable]):
        # groups: name -> function returning the pids to count (evaluated at start and end)
        self.groups = groups

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.client0 = time.process_time()
        self.busy0 = machine_busy()
        self.pids = {name: set(fn()) for name, fn in self.groups.items()}
        self.cpu0 = {name: {pid: proc_times(pid) for pid in pids} for name, pids in self.pids.items()}
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.client = time.process_time() - self.client0
        busy1 = machine_busy()
        db, dt = busy1[0] - self.busy0[0], busy1[1] - self.busy0[1]
        ncpu = os.cpu_count() or 1
        self.machine = (db / dt) if dt else 0.0  # fraction of all cores
        self.by_group, self.sys_by_group = {}, {}
        for name, fn in self.groups.items():
            pids = self.pids[name] | set(fn())
            user = system = 0.0
            for pid in pids:
                u1, s1 = proc_times(pid)
                u0, s0 = self.cpu0[name].get(pid, (0.0, 0.0))
                user, system = user + u1 - u0, system + s1 - s0
            self.by_group[name] = user + system
            self.sys_by_group[name] = system
        self.cores = ncpu
        return False

    def summary(self) -> dict:
        """CPU seconds per group and as a fraction of the machine's capacity over the phase."""
        capacity = self.wall * self.cores
        out = {"wall_s": self.wall, "machine_busy": self.machine,
               "client_cpu_s": self.client, "client_share": self.client / capacity if capacity else 0.0}
        for name, seconds in self.by_group.items():
            out[f"{name}_cpu_s"] = seconds
            out[f"{name}_share"] = seconds / capacity if capacity else 0.0
            # the part of it spent in the kernel (sockets, fsync, scheduling)
            out[f"{name}_sys_share"] = self.sys_by_group[name] / capacity if capacity else 0.0
        counted = self.client + sum(self.by_group.values())
        out["other_share"] = max(0.0, self.machine - counted / capacity) if capacity else 0.0
        return out


# -- a bounded phase --------------------------------------------------------------------

@dataclass
class PhaseResult:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: dict
    error_samples: list
    cpu: dict
    connects: int
    per_client: list = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        values = sorted(self.latencies_ms)
        if not values:
            return float("nan")
        k = min(len(values) - 1, max(0, int(round(q / 100 * len(values) + 0.5)) - 1))
        return values[k]

    def as_json(self) -> dict:
        ok = self.requests - self.errors
        return {"name": self.name, "requests": self.requests, "ok": ok, "errors": self.errors,
                "seconds": self.seconds, "per_s": (ok / self.seconds) if self.seconds else 0.0,
                "p50_ms": self.percentile(50), "p90_ms": self.percentile(90),
                "p99_ms": self.percentile(99), "max_ms": max(self.latencies_ms, default=float("nan")),
                "statuses": self.statuses, "error_samples": self.error_samples[:5],
                "cpu": self.cpu, "connects": self.connects}


def run_phase(name: str, port: int, make_request, clients: int, max_requests: int,
              max_seconds: float, expect=(200, 201), check=None, cpu_groups=None,
              after=None) -> PhaseResult:
    """Drive ``clients`` threads until ``max_requests`` are sent or ``max_seconds`` pass.

    ``make_request(client_index, n)`` returns the request bytes of that client's
    n-th request (built before the clock starts for that request), or None when
    the client has nothing left to send. ``check(status, body)`` may raise
    HttpError for a response that is wrong despite its status; ``after(client_index,
    status, body)`` is told every response (outside the timed span).
    """
    counter = itertools.count()
    stop_at = [0.0]
    lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: dict[int, int] = {}
    samples: list = []
    errors = [0]
    sent = [0] * clients
    conns = [Connection(port) for _ in range(clients)]
    start_barrier = threading.Barrier(clients + 1)
    perf = time.perf_counter

    def worker(i: int):
        conn = conns[i]
        mine = latencies[i]
        local_status: dict[int, int] = {}
        n = 0
        start_barrier.wait()
        while True:
            if next(counter) >= max_requests or perf() >= stop_at[0]:
                break
            raw = make_request(i, n)
            if raw is None:
                break
            n += 1
            t0 = perf()
            try:
                status, body = conn.request(raw)
                bad = status not in expect
                if not bad and check is not None:
                    check(status, body)
            except HttpError as e:
                status, body, bad = -2, str(e).encode(), True
            except (OSError, _Closed, ValueError) as e:
                status, body, bad = -1, repr(e).encode(), True
                conn.close()
            mine.append((perf() - t0) * 1000.0)
            if after is not None:
                after(i, status, body)
            local_status[status] = local_status.get(status, 0) + 1
            if bad:
                with lock:
                    errors[0] += 1
                    if len(samples) < 10:
                        samples.append(f"{status}: {body[:300]!r}")
        sent[i] = n
        with lock:
            for k, v in local_status.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    gc.collect()
    gc.disable()
    try:
        with CpuMeter(cpu_groups or {}) as meter:
            t0 = perf()
            stop_at[0] = t0 + max_seconds
            start_barrier.wait()
            for t in threads:
                t.join(max_seconds + 120)
            elapsed = perf() - t0
    finally:
        gc.enable()
        for c in conns:
            c.close()
    flat = [x for lst in latencies for x in lst]
    return PhaseResult(name, len(flat), errors[0], elapsed, flat, statuses, samples,
                       meter.summary(), sum(c.connects for c in conns), sent)
