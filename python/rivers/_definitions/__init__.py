"""Declarations: assets, results, metadata, resources, retry policies, hooks, executors.

Everything here describes work; nothing here runs it.
"""
