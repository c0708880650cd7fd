"""Execution calls of CONTRACT §3: start, run (streamed), list, get, download, cancel."""

from ninja import Router

router = Router(tags=["executions"])
