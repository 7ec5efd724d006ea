"""Tenants and endpoints: who may receive what.

Owns: organizations and their members (models.py, organizations.py),
deleting an organization or a webhook with its history (deletion.py), API
keys (models.py, keys.py), webhooks and the event-type catalog (models.py),
public ids (ids.py), domain errors (errors.py), event-type patterns
(patterns.py), input validation (validation.py), which addresses are private
(addresses.py), signing secrets and their header names (secrets.py), and
opaque list cursors (cursors.py).

May import: config's leaf modules only. The base layer: every other app
imports it, it imports none of them.
"""
