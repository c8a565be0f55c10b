"""The UA core on top of the Dispatcher (RFC 3261 sections 8, 12, 13, 17).

* :mod:`.dialog` holds the sans-IO dialog state (section 12).
* :mod:`.endpoint` holds the :class:`Endpoint` (transactions, dialogs, I/O).
"""

from __future__ import annotations

from .dialog import (
    DIALOG_CREATING_METHODS,
    TARGET_REFRESH_METHODS,
    Dialog,
    DialogError,
    DialogId,
    DialogState,
    dialog_id_of_request,
    dialog_id_of_response,
)
from .endpoint import (
    KNOWN_METHODS,
    ClientRequest,
    CredentialSource,
    Endpoint,
    EndpointStatistics,
    RequestFailed,
    RequestHandler,
)

__all__ = [
    "ClientRequest",
    "CredentialSource",
    "Endpoint",
    "EndpointStatistics",
    "KNOWN_METHODS",
    "RequestFailed",
    "RequestHandler",
    "DIALOG_CREATING_METHODS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogState",
    "TARGET_REFRESH_METHODS",
    "dialog_id_of_request",
    "dialog_id_of_response",
]
