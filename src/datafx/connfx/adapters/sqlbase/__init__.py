"""Helpers shared by the PostgreSQL and MySQL adapters.

Options parsing, quoted table names, size limits, one-time schema setup and
the background sweep of expired rows. Nothing here imports a driver.
"""
