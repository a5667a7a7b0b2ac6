"""Test-wide settings."""

from __future__ import annotations

import os

# `tuned`'s choices are searched in every test (subprocesses inherit this): a choice cached by
# one test, or by the developer's own commands, must not stand in for the search another
# test checks. tests/test_tuning_cache.py turns the cache on in folders of its own.
os.environ["LSCHED_CACHE_DIR"] = "off"
