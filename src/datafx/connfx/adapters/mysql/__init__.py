"""The MySQL and MariaDB backend (``mysql://``, ``mariadb://``), built on asyncmy."""

from datafx.connfx.adapters.mysql.connection import MySqlConnection, MySqlFactory

__all__ = ["MySqlConnection", "MySqlFactory", "factory"]

factory = MySqlFactory()
