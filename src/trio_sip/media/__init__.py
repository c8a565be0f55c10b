"""Media for calls: SDP offer/answer, RTP, G.711, DTMF and ready-made handlers.

The sans-IO parts (:mod:`.rtp`, :mod:`.g711`, :mod:`.dtmf`, :mod:`.offer_answer`)
import nothing that does I/O; :class:`MediaSession` and the handlers in
:mod:`.handlers` run on anyio. See the "Media" page of the documentation.
"""

from __future__ import annotations

from .dtmf import DtmfDetector, EventReceiver, TelephoneEvent, dtmf_tone, event_payloads
from .g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .handlers import AudioClip, echo, load_audio, play, record, silence
from .offer_answer import (
    DEFAULT_CODECS,
    MediaParams,
    NoCommonMedia,
    answer_offer,
    hold_offer,
    make_offer,
    read_answer,
    resume_offer,
)
from .rtp import ReceptionStats, RtpExtension, RtpPacket, RtpSender
from .session import MediaSession, MediaStatistics, PortRange

__all__ = [
    "DEFAULT_CODECS",
    "AudioClip",
    "DtmfDetector",
    "EventReceiver",
    "MediaParams",
    "MediaSession",
    "MediaStatistics",
    "NoCommonMedia",
    "PortRange",
    "ReceptionStats",
    "RtpExtension",
    "RtpPacket",
    "RtpSender",
    "TelephoneEvent",
    "alaw_decode",
    "alaw_encode",
    "answer_offer",
    "dtmf_tone",
    "echo",
    "event_payloads",
    "hold_offer",
    "load_audio",
    "make_offer",
    "play",
    "read_answer",
    "record",
    "resume_offer",
    "silence",
    "ulaw_decode",
    "ulaw_encode",
]
