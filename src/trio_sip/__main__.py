"""``python -m trio_sip`` and the ``trio-sip`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
