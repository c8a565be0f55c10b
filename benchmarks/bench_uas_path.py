"""CPU per call of ``trio-sip answer``, one call at a time, without SIPp.

Run: ``python benchmarks/bench_uas_path.py [--backend trio|asyncio] [--calls N]``.

Starts ``trio-sip answer`` on loopback and makes ``--calls`` calls to it from
a plain UDP socket in this process, strictly one after the other: INVITE with
SIPp's SDP, the 200, ACK, BYE, its 200 (SIPp's ``uac`` flow). Nothing queues
and nothing is retransmitted, so the CPU time the answering process spends
per call (read from ``/proc/<pid>/stat`` before and after, Linux) is its
cost alone, steadier than a rate ladder. ``--warmup`` calls come first and
are not counted.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

SDP = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
    "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
_TO = re.compile(rb"^To: *(.*?)\r$", re.MULTILINE | re.IGNORECASE)
_CSEQ = re.compile(rb"^CSeq: *\d+ (\w+)\r$", re.MULTILINE | re.IGNORECASE)
#: How long one answer may take before the run is declared broken.
TIMEOUT = 5.0


def _request(method: str, n: int, cseq: int, local: int, server: int, to: str, body: str) -> bytes:
    extra = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"{method} sip:service@127.0.0.1:{server} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-{n}-{cseq}-{method}\r\n"
        f"From: sipp <sip:sipp@127.0.0.1:{local}>;tag={n}SIPpTag00\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {n}-bench@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: sip:sipp@127.0.0.1:{local}\r\n"
        f"Max-Forwards: 70\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def _final(sock: socket.socket, method: str) -> bytes:
    """The final response to ``method`` (provisionals and strays skipped)."""
    while True:
        data = sock.recv(65535)
        status = _STATUS.match(data)
        cseq = _CSEQ.search(data)
        if status and cseq and cseq.group(1).decode() == method and status.group(1) >= b"200":
            return data


def call(sock: socket.socket, n: int, server: int) -> None:
    """One call: INVITE, 200, ACK, BYE, 200."""
    local = sock.getsockname()[1]
    target = ("127.0.0.1", server)
    sock.sendto(
        _request("INVITE", n, 1, local, server, f"<sip:service@127.0.0.1:{server}>", SDP), target
    )
    ok = _final(sock, "INVITE")
    if not ok.startswith(b"SIP/2.0 200"):
        raise RuntimeError(f"call {n}: {ok.splitlines()[0]!r}")
    to_header = _TO.search(ok)
    assert to_header is not None
    to = to_header.group(1).decode()
    sock.sendto(_request("ACK", n, 1, local, server, to, ""), target)
    sock.sendto(_request("BYE", n, 2, local, server, to, ""), target)
    bye = _final(sock, "BYE")
    if not bye.startswith(b"SIP/2.0 200"):
        raise RuntimeError(f"BYE {n}: {bye.splitlines()[0]!r}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    """Measure and print microseconds of CPU per call; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args(argv)
    port = _free_udp_port()
    argv_ = [sys.executable, "-m", "trio_sip", "--backend", args.backend]
    argv_ += ["answer", "--listen", f"udp:127.0.0.1:{port}"]
    with (
        subprocess.Popen(argv_, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as answer,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        try:
            assert answer.stdout is not None
            answer.stdout.readline()  # "listening on ...": it is up
            # The rtp: lines go nowhere: a full pipe must not stall the answerer.
            drain = subprocess.Popen(["cat"], stdin=answer.stdout, stdout=subprocess.DEVNULL)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(TIMEOUT)
            for n in range(args.warmup):
                call(sock, n, port)
            before, started = cpu_seconds(answer.pid), time.perf_counter()
            for n in range(args.warmup, args.warmup + args.calls):
                call(sock, n, port)
            used, wall = cpu_seconds(answer.pid) - before, time.perf_counter() - started
        finally:
            answer.kill()
        drain.wait()
    print(
        f"trio-sip answer ({args.backend}): {used / args.calls * 1e6:.0f} us CPU per call, "
        f"{args.calls} calls one at a time in {wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
