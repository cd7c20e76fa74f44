"""The per-process kit shared by every resource and protocol package, once.

- `hub`: one LISTEN/NOTIFY connection per process (typed messages, topics, reconnect, resync);
- `invalidation`: what services publish, in the changing transaction, for the caches to drop;
- `throttle`: the failure throttle every credential check uses, shared by every replica;
- `argon2`: the bounded argon2id gate;
- `address`: the client address (trusted proxies, IPv6 per /64).

It sits above `app.core` and `app.models` and below every resource and protocol package: nothing
here imports a resource package or `app.oidc`.
"""
