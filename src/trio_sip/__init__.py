"""trio-sip."""
