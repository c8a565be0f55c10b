"""SDP offer/answer (RFC 3264) for audio over RTP, sans-IO.

Built on the SDP model of :mod:`trio_sip.message.sdp`. The functions here make
an offer, answer an offer, read the answer to an offer, and make the re-offers
that put a call on hold and take it off hold. Each side ends up with a
:class:`MediaParams`: where to send RTP, with which payload type, which payload
type carries RFC 4733 events, and in which directions media flows. A
:class:`~trio_sip.media.MediaSession` takes those with its ``apply`` method.

Only audio is negotiated, and one audio stream is accepted: the first offered
audio stream with a codec in common. Every other stream is rejected with port 0,
which keeps the answer's media lines one to one with the offer's
(RFC 3264 section 6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from ..message.sdp import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    Direction,
    Media,
    RtpMap,
    SessionDescription,
)

__all__ = [
    "DEFAULT_CODECS",
    "MediaParams",
    "NoCommonMedia",
    "answer_offer",
    "hold_offer",
    "make_offer",
    "read_answer",
    "resume_offer",
]

#: The codecs this library encodes and decodes, in default preference order.
DEFAULT_CODECS: Final = (STATIC_PAYLOAD_TYPES[0], STATIC_PAYLOAD_TYPES[8])

_TELEPHONE_EVENT: Final = "telephone-event"


class NoCommonMedia(ValueError):
    """No offered stream can be used: the answerer should reply 488 (RFC 3261 13.3.1.1).

    An answer that rejects every stream is still produced by
    :func:`answer_offer`; this error is for callers that ask to be told instead.
    """


@dataclass(frozen=True, slots=True)
class MediaParams:
    """What one side of a negotiated audio stream uses.

    ``remote`` is where RTP goes (None while unknown or when the peer gave an
    unspecified address, RFC 3264 8.4); ``codec`` is the payload type we send
    with; ``telephone_event`` the payload type of RFC 4733 events both sides
    agreed on (None: DTMF only in-band); ``direction`` is ours: whether we send
    and whether we receive; ``index`` is the stream's m-line position.
    """

    remote: tuple[str, int] | None
    codec: RtpMap
    telephone_event: int | None
    direction: Direction
    ptime: int
    index: int

    @property
    def payload_type(self) -> int:
        """The payload type of :attr:`codec`."""
        return self.codec.payload_type


def _combine(ours: Direction, theirs: Direction) -> Direction:
    # ``theirs`` is the peer's attribute, written from its side. We send only
    # if we want to and they receive; we receive only if we want to and they
    # send (RFC 3264 6.1 for the answer, 7 for the offerer).
    sends = ours.sends and theirs.receives
    receives = ours.receives and theirs.sends
    if sends and receives:
        return Direction.SENDRECV
    if sends:
        return Direction.SENDONLY
    if receives:
        return Direction.RECVONLY
    return Direction.INACTIVE


def _is_audio_rtp(media: Media) -> bool:
    return media.media_type == "audio" and media.proto.upper() == "RTP/AVP"


def _same_codec(a: RtpMap, b: RtpMap) -> bool:
    # Encoding names are case-insensitive (RFC 4855 section 3).
    return (
        a.encoding_name.lower() == b.encoding_name.lower()
        and a.clock_rate == b.clock_rate
        and a.channels == b.channels
    )


def _telephone_event(rtpmaps: dict[int, RtpMap]) -> int | None:
    for payload_type, rtpmap in rtpmaps.items():
        if rtpmap.encoding_name.lower() == _TELEPHONE_EVENT and rtpmap.clock_rate == 8000:
            return payload_type
    return None


def _peer_direction(session: SessionDescription, media: Media) -> Direction:
    direction = session.effective_direction(media)
    connection = media.effective_connection(session)
    if connection is not None and connection.is_unspecified and direction.receives:
        # RFC 3264 8.4: an address of 0.0.0.0 (RFC 2543 hold) means "send me
        # nothing", whatever the attribute says.
        return Direction.SENDONLY if direction.sends else Direction.INACTIVE
    return direction


def _remote(session: SessionDescription, media: Media) -> tuple[str, int] | None:
    connection = media.effective_connection(session)
    if connection is None or connection.is_unspecified or media.is_rejected:
        return None
    return connection.address, media.port


def make_offer(
    address: str,
    port: int,
    *,
    codecs: Iterable[int | RtpMap] = DEFAULT_CODECS,
    telephone_event: int | None = 101,
    direction: Direction = Direction.SENDRECV,
    ptime: int = 20,
    connection_per_media: bool = False,
    session_id: int | None = None,
) -> SessionDescription:
    """An offer of one audio stream at ``address``:``port`` (RFC 3264 section 5).

    The direction attribute is always written, so a later hold or resume only
    changes that line. With ``connection_per_media`` the ``c=`` line goes in
    the media section instead of the session (both are valid, RFC 4566 5.7).
    """
    connection = Connection.for_address(address)
    media = Media.audio(
        port,
        codecs,
        telephone_event=telephone_event,
        ptime=ptime,
        direction=direction,
        connection=connection if connection_per_media else None,
    )
    offer = SessionDescription.new(address, media=[media], session_id=session_id)
    return replace(offer, connection=None) if connection_per_media else offer


def answer_offer(
    offer: SessionDescription,
    address: str,
    port: int,
    *,
    codecs: Sequence[RtpMap] = DEFAULT_CODECS,
    telephone_event: bool = True,
    direction: Direction = Direction.SENDRECV,
    connection_per_media: bool = False,
    previous: SessionDescription | None = None,
    require: bool = False,
) -> tuple[SessionDescription, MediaParams | None]:
    """Answer ``offer`` with audio at ``address``:``port``; return the answer and our params.

    The answer has one media line per offered line, in the same order
    (RFC 3264 section 6). The first audio RTP/AVP stream that offers one of
    ``codecs`` is accepted: its formats are the offered payload types we support,
    in the offerer's order and with the offerer's numbers (section 6.1), plus the
    offered telephone-event type when ``telephone_event`` is True. Every other
    stream, and a stream offered with port 0, is rejected with port 0.

    ``direction`` is what we want; the answer's direction is that limited by the
    offer's (sendonly is answered with recvonly, inactive with inactive ...).
    The answer's ``t=`` line is the offer's (RFC 3264 section 6).
    ``previous`` is our last SDP in this dialog: its o= line is kept, with the
    version incremented if the answer differs from it; an answer that does not
    is ``previous`` itself (RFC 3264 section 8). The params are None when nothing
    was accepted; with ``require`` that raises :class:`NoCommonMedia` instead.
    """
    chosen: MediaParams | None = None
    answered: list[Media] = []
    connection = Connection.for_address(address)
    for index, offered in enumerate(offer.media):
        accepted = None
        if chosen is None and not offered.is_rejected and _is_audio_rtp(offered):
            accepted = _accept(offer, offered, index, port, codecs, telephone_event, direction)
        if accepted is None:
            # Rejected: port 0, the offered formats kept (an m= line needs one).
            answered.append(Media(offered.media_type, 0, offered.proto, offered.formats))
            continue
        media, chosen = accepted
        if connection_per_media:
            media = replace(media, connections=(connection,))
        answered.append(media)
    if chosen is None and require:
        raise NoCommonMedia("no offered stream has a codec in common")
    session_connection = None if connection_per_media else connection
    if previous is not None:
        answer = replace(
            previous,
            media=tuple(answered),
            connection=session_connection,
            timings=offer.timings,
            zone_adjustments=offer.zone_adjustments,
        )
        # RFC 3264 section 8: the version grows when the SDP changes, and only
        # then; an unchanged answer (to a session refresh, say) is the previous
        # SDP itself, which the peer can tell is a no-op.
        if answer != previous:
            answer = answer.with_next_version()
    else:
        # new() writes the session c= line for ``address`` already. The t=
        # line is the offer's: "the time of the session cannot be negotiated"
        # (RFC 3264 section 6); "t=0 0", the common case, is new()'s already.
        answer = SessionDescription.new(address, media=answered)
        if connection_per_media or offer.timings != answer.timings or offer.zone_adjustments:
            answer = replace(
                answer,
                connection=session_connection,
                timings=offer.timings,
                zone_adjustments=offer.zone_adjustments,
            )
    return answer, chosen


def _accept(
    offer: SessionDescription,
    offered: Media,
    index: int,
    port: int,
    codecs: Sequence[RtpMap],
    telephone_event: bool,
    direction: Direction,
) -> tuple[Media, MediaParams] | None:
    rtpmaps = offered.rtpmaps()
    common = [rtpmap for rtpmap in rtpmaps.values() if any(_same_codec(rtpmap, c) for c in codecs)]
    if not common:
        return None
    event = _telephone_event(rtpmaps) if telephone_event else None
    ours = _combine(direction, _peer_direction(offer, offered))
    ptime = offered.ptime or 20
    media = Media.audio(
        port,
        common,
        telephone_event=event,
        ptime=ptime,
        direction=ours,
    )
    if event is not None:
        # Keep the offerer's event list in our fmtp when it gave one.
        fmtp = offered.fmtp(event)
        if fmtp:
            attributes = tuple(
                Attribute("fmtp", f"{event} {fmtp}") if a.name == "fmtp" else a
                for a in media.attributes
            )
            media = replace(media, attributes=attributes)
    params = MediaParams(_remote(offer, offered), common[0], event, ours, ptime, index)
    return media, params


def read_answer(
    offer: SessionDescription,
    answer: SessionDescription,
    *,
    codecs: Sequence[RtpMap] = DEFAULT_CODECS,
) -> MediaParams | None:
    """Our params from the answer to ``offer`` (RFC 3264 section 7), or None if all rejected.

    The first accepted audio stream is used. We send with the first payload type
    of the answer that we offered and support; the direction is the one we
    offered limited by the answer's.
    """
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=False)):
        if theirs.is_rejected or not _is_audio_rtp(theirs):
            continue
        offered = ours.rtpmaps()
        answered = theirs.rtpmaps()
        usable = [
            rtpmap
            for payload_type, rtpmap in answered.items()
            if payload_type in offered and any(_same_codec(rtpmap, c) for c in codecs)
        ]
        if not usable:
            continue
        event = _telephone_event(answered)
        if event is not None and event not in offered:
            event = None
        direction = _combine(offer.effective_direction(ours), _peer_direction(answer, theirs))
        ptime = theirs.ptime or ours.ptime or 20
        return MediaParams(_remote(answer, theirs), usable[0], event, direction, ptime, index)
    return None


def hold_offer(previous: SessionDescription) -> SessionDescription:
    """The re-offer that puts the call on hold (RFC 3264 section 8.4).

    A stream we sent and received on becomes sendonly (we may keep sending music
    on hold); one we only received on becomes inactive. The session version grows.
    """
    media = []
    for m in previous.media:
        if m.is_rejected:
            media.append(m)
            continue
        current = previous.effective_direction(m)
        held = Direction.SENDONLY if current.sends else Direction.INACTIVE
        media.append(m.with_direction(held))
    return replace(previous.with_direction(None), media=tuple(media)).with_next_version()


def resume_offer(previous: SessionDescription) -> SessionDescription:
    """The re-offer that takes the call off hold: every active stream back to sendrecv."""
    media = tuple(
        m if m.is_rejected else m.with_direction(Direction.SENDRECV) for m in previous.media
    )
    return replace(previous.with_direction(None), media=media).with_next_version()
