"""Login sessions: {I}/sessions/{id} get/revoke/suspend/reactivate and {U}/sessions."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["sessions"])
