"""The local demo of `make run`: the demo organization and its webhooks
(seed.py), a receiver with healthy, flaky, slow and down endpoints
(receiver.py), and the `demo` and `demoreceiver` commands.

May import: deliveries, webhooks. Nothing imports it.
"""
