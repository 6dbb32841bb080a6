"""Sharing a model: publish, pull (verified, cached), signing keys, the team model on the push path.

Import-free: the push path loads only the module it needs.
"""
