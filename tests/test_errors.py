from __future__ import annotations

from trio_sip import ResolveError, ResolveFailure, SIPError


def test_resolve_error_carries_its_reason() -> None:
    err = ResolveError(ResolveFailure.TIMEOUT, "no answer for example.com")
    assert isinstance(err, SIPError)
    assert err.reason is ResolveFailure.TIMEOUT
    assert err.detail == "no answer for example.com"
    assert str(err) == "timeout: no answer for example.com"
    plain = ResolveError("cannot resolve 'x'")
    assert plain.reason is ResolveFailure.NOT_FOUND
    assert str(plain) == "cannot resolve 'x'"
