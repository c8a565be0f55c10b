"""Server-side elements that sit on a Dispatcher: chain, authorize, registrar, proxy, stores.

As in Net::SIP, a registrar and a stateless proxy use the Dispatcher
directly (no transaction layer): a :class:`ReceiveChain` of handlers is the
Dispatcher's receiver, and each handler answers, absorbs or passes on.
"""

from .authorize import Authorize, AuthorizeStatistics, CredentialLookup, Nonces, NonceState, Secret
from .chain import (
    AnsweredInvites,
    Blocker,
    Dropper,
    DropperStatistics,
    Handler,
    ReceiveChain,
    Redirect,
    reply,
)
from .proxy import ProxyStatistics, StatelessProxy
from .redis import RedisClient, RedisClientStatistics, RedisError, RedisURL, StaleConnectionError
from .redis_store import RedisStore, RedisStoreStatistics, StoreConflictError
from .registrar import Registrar, RegistrarStatistics, aor_of
from .store import Binding, BindingStore, MemoryStore, SQLiteStore, open_store

__all__ = [
    "AnsweredInvites",
    "Authorize",
    "AuthorizeStatistics",
    "Binding",
    "BindingStore",
    "Blocker",
    "CredentialLookup",
    "Dropper",
    "DropperStatistics",
    "Handler",
    "MemoryStore",
    "NonceState",
    "Nonces",
    "ProxyStatistics",
    "ReceiveChain",
    "RedisClient",
    "RedisClientStatistics",
    "RedisError",
    "RedisStore",
    "RedisStoreStatistics",
    "RedisURL",
    "Redirect",
    "Registrar",
    "RegistrarStatistics",
    "SQLiteStore",
    "Secret",
    "StaleConnectionError",
    "StatelessProxy",
    "StoreConflictError",
    "aor_of",
    "open_store",
    "reply",
]
