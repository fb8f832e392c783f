"""Adapters, one subpackage per technology, each exposing a ``factory``."""
