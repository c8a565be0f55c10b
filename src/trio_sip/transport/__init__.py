"""Transports: UDP, TCP and TLS legs on anyio."""

from .leg import Address, Leg, LegStatistics, TransportFailure, format_address, parse_address
from .multiplex import DatagramMultiplexer
from .stream import StreamLeg, TCPLeg, TLSLeg
from .udp import UDPLeg

__all__ = [
    "Address",
    "DatagramMultiplexer",
    "Leg",
    "LegStatistics",
    "StreamLeg",
    "TCPLeg",
    "TLSLeg",
    "TransportFailure",
    "UDPLeg",
    "format_address",
    "parse_address",
]
