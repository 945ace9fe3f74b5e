"""Shared foundations: settings, configuration, path safety, files, columns, memory."""
