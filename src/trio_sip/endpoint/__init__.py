"""The UA core on top of the Dispatcher (RFC 3261 sections 8, 12, 13, 17).

* :mod:`.dialog` holds the sans-IO dialog state (section 12).
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

__all__ = [
    "DIALOG_CREATING_METHODS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogState",
    "TARGET_REFRESH_METHODS",
    "dialog_id_of_request",
    "dialog_id_of_response",
]
