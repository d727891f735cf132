"""A Python host for the smtpcell protocol component (wasmtime-py).

Modules: transcript (the corpus format), component (loading and one
instance per session), guard (action validation), maildir and
trace_headers (durable storage), runner (transcript runs), connection
(the SMTP server's per-connection loop).
"""
