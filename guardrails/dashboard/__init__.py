"""The audit dashboard: figures from the audit log (data.py) and the server-rendered page (html.py); the
routes are guardrails/proxy/dashboard.py."""
