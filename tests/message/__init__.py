"""Tests of the sans-IO message layer (a package: test module names may repeat elsewhere)."""
