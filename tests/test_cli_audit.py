"""The ``trio-sip`` command as a demanding user meets it: bad input, signals, failures.

Each test runs the command as a child process (as tests/test_cli.py does),
on loopback only, with ports chosen at run time and every process bounded.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from cli_process import Command

BACKENDS = pytest.mark.parametrize("backend", ["trio", "asyncio"])


def run_command(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "trio_sip", *args], capture_output=True, timeout=timeout
    )


def assert_usage_error(done: subprocess.CompletedProcess[bytes], complaint: str) -> None:
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.splitlines()) == 1, err
    assert complaint in err


def test_options_with_a_malformed_uri_is_a_usage_error() -> None:
    # As for call and register: one line and status 2, not a ParseError traceback.
    done = run_command("options", "sip:", "--listen", "udp:127.0.0.1:0")
    assert_usage_error(done, "bad SIP URI 'sip:'")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    where = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    files = {
        "cert": where / "cert.pem",
        "key": where / "key.pem",
        "ca": where / "ca.pem",
        "garbage": where / "garbage.pem",
    }
    issued.cert_chain_pems[0].write_to_path(str(files["cert"]))
    issued.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    files["garbage"].write_text("not a certificate\n")
    return {name: str(path) for name, path in files.items()}


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--cert", "{missing}"], "No such file or directory"),
        (["--cert", "{garbage}"], "not PEM certificate and key"),
        # A certificate whose key is in another file that is not given.
        (["--cert", "{cert}"], "not PEM certificate and key"),
        (["--cert", "{cert}", "--key", "{missing}"], "No such file or directory"),
        (["--cert", "{cert}", "--key", "{key}", "--ca", "{missing}"], "--ca"),
        (["--cert", "{cert}", "--key", "{key}", "--ca", "{garbage}"], "not PEM CA certificates"),
    ],
)
def test_unusable_tls_files_give_one_line_and_status_2(
    tls_files: dict[str, str], tmp_path: Path, options: list[str], complaint: str
) -> None:
    names = {**tls_files, "missing": str(tmp_path / "missing.pem")}
    args = [option.format(**names) for option in options]
    done = run_command("proxy", "--listen", "tls:127.0.0.1:0", *args, timeout=20)
    assert_usage_error(done, complaint)


def test_tls_files_that_work_are_served(tls_files: dict[str, str]) -> None:
    # The check of the files above must not refuse good ones.
    args = ["--cert", tls_files["cert"], "--key", tls_files["key"], "--ca", tls_files["ca"]]
    with Command("proxy", "--listen", "tls:127.0.0.1:0", *args) as proxy:
        proxy.start()
        code, out, err = proxy.stop()
    assert code == 0, err
    assert out.startswith("listening on tls:127.0.0.1:")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        # float() takes these, and then the wait fails with a traceback or
        # reports "no answer in -1 s".
        (["call", "sip:bob@127.0.0.1:1", "--ring-timeout", "nan"], "argument --ring-timeout"),
        (["call", "sip:bob@127.0.0.1:1", "--ring-timeout", "-1"], "argument --ring-timeout"),
        (["call", "sip:bob@127.0.0.1:1", "--duration", "-1"], "argument --duration"),
        (["answer", "--listen", "udp:127.0.0.1:0", "--ring", "nan"], "argument --ring"),
        (["answer", "--listen", "udp:127.0.0.1:0", "--hangup-after", "-2"], "--hangup-after"),
        (["options", "sip:127.0.0.1:1", "--t1", "0"], "argument --t1"),
        # The command has no --cert: the error must not send the user to it.
        (["answer", "--listen", "tls:127.0.0.1:0"], "TLS legs are for proxy and registrar"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(args: list[str], complaint: str) -> None:
    assert_usage_error(run_command(*args, timeout=20), complaint)


def test_answer_ends_when_its_registration_is_refused() -> None:
    # "trio-sip: REGISTER failed" and status 1, not a process that then
    # waits forever for its own serving tasks.
    with Command("registrar", "--listen", "udp:127.0.0.1:0", "--user", "bob:pw") as registrar:
        at = f"127.0.0.1:{registrar.start().port()}"
        for extra in ([], ["--ring", "0.1"]):  # calls answered at once, or in tasks
            done = run_command(
                "answer", "--listen", "udp:127.0.0.1:0", "--aor", "sip:bob@127.0.0.1",
                "--registrar", at, "--user", "bob:wrong", *extra, timeout=20,
            )  # fmt: skip
            assert done.returncode == 1, done.stderr
            assert done.stderr.decode() == "trio-sip: REGISTER failed: SIP/2.0 403 Forbidden\n"
        registrar.stop()


@BACKENDS
@pytest.mark.parametrize("command", ["register", "options"])
def test_sigint_ends_the_wait_for_an_answer(backend: str, command: str) -> None:
    # A server that never answers: Ctrl-C while the command waits (up to
    # 32 s) stops it as it stops call: one line and status 130, no traceback.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.settimeout(10)
        at = f"127.0.0.1:{silent.getsockname()[1]}"
        args = {
            "register": ["register", "sip:bob@127.0.0.1", "--registrar", at],
            "options": ["options", f"sip:{at}"],
        }[command]
        process = subprocess.Popen(
            [sys.executable, "-m", "trio_sip", "--backend", backend, *args,
             "--listen", "udp:127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            silent.recvfrom(65535)  # the request: the command now waits
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert err.decode() == "interrupted by SIGINT\n"
    assert out == b""


def test_a_registrar_answers_cancel_with_481_and_other_methods_with_405() -> None:
    # Section 9.2: a CANCEL that matches no transaction gets 481 (a registrar
    # never has an INVITE to cancel); other methods 405 with Allow (21.4.6).
    with (
        Command("registrar", "--listen", "udp:127.0.0.1:0") as registrar,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        at = ("127.0.0.1", registrar.start().port())
        client.bind(("127.0.0.1", 0))
        client.settimeout(10)
        here = client.getsockname()[1]
        statuses = []
        for method in ("CANCEL", "MESSAGE"):
            client.sendto(
                (
                    f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bK{method}\r\n"
                    "Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\n"
                    "To: <sip:bob@127.0.0.1>\r\nCall-ID: reg-only@127.0.0.1\r\n"
                    f"CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
                ).encode(),
                at,
            )
            statuses.append(client.recv(65535).split(b" ", 2)[1])
        registrar.stop()
    assert statuses == [b"481", b"405"]
