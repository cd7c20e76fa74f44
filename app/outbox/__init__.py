"""The general outbox: messages written in the transaction of the change that causes them and
delivered at least once by the relay (webhook relay processes: `authpi serve`, `authpi worker`).

API for a new kind of message (e.g. back-channel logout):

    from app.outbox.registry import Kind, register_kind, PermanentFailure
    register_kind(Kind(name="backchannel_logout", deliver=deliver_fn, on_sent=..., on_failed=...))
    # in the causing transaction:
    from app.outbox.service import enqueue
    await enqueue(session, server_key=..., kind="backchannel_logout", account_id=..., payload={...})

The module that registers a kind must be imported by the process that runs the relay (app.main and
app.cli import every package that does).
"""
